//! `web`: the simulated host guests fetch from through the sidecar's egress. An HTTP/1.0
//! server on [`WEB_PORT`] that reads a request head and answers [`response`] for its path,
//! sometimes slowly (in chunks, with pauses: a slow peer), sometimes cut short (it closes
//! early). What it cut short, and where, goes into the shared model, so a truncated fetch is
//! told from one the sidecar truncated.

use crate::shared::SharedRef;
use crate::timers::Timers;
use crate::Swarm;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::{TcpListener, TcpStream};

/// The turmoil host the sidecar's loopback leads to.
pub const WEB_HOST: &str = "web";
/// Where `web` listens (the port the fetching VMs have in `loopbackExemptPorts`).
pub const WEB_PORT: u16 = 8080;
/// A request head longer than this is not answered.
const MAX_HEAD_BYTES: usize = 4096;
/// The largest body a path may ask for.
const MAX_BODY_BYTES: usize = 128 * 1024;
/// How long one write may wait for the sidecar to take it (longer than any partition).
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the server waits for a request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(60);

/// The body size a fetch path asks for: its last segment, in bytes (bounded).
fn body_size(path: &str) -> Option<usize> {
    let size: usize = path.rsplit('/').next()?.parse().ok()?;
    (size <= MAX_BODY_BYTES).then_some(size)
}

/// FNV-1a of `bytes`.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The whole response `web` sends for `path`, head and body: a path ending in a size gets
/// that many bytes of text drawn from the path; any other path, a short 404.
pub fn response(path: &str) -> Vec<u8> {
    let Some(size) = body_size(path) else {
        return b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec();
    };
    let mut bytes =
        format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {size}\r\n\r\n").into_bytes();
    push_body(&mut bytes, fnv(path.as_bytes()), size);
    bytes
}

/// How often a body repeats: its letters step by 5 (31 modulo 26) and a newline comes every 64
/// bytes, so byte `i + BODY_PERIOD` is byte `i`, except across the one place where the sum
/// wraps.
const BODY_PERIOD: usize = 832;
const _: () = assert!(BODY_PERIOD.is_multiple_of(26) && BODY_PERIOD.is_multiple_of(64));

/// Appends a body of `size` bytes: byte `i` is a newline every 64th, else the letter
/// `((31 i + seed) mod 2^64) mod 26`. Every fetch's answer is made twice (served, and checked),
/// up to 128 KB each, so one period is computed (on each side of the wrap, if the body has
/// one) and the rest copied from it.
fn push_body(bytes: &mut Vec<u8>, seed: u64, size: usize) {
    bytes.reserve(size);
    let start = bytes.len();
    // The first byte whose sum wrapped: the least `i` with `seed + 31 i >= 2^64`.
    let wrap = usize::try_from((u64::MAX - seed) / 31 + 1).map_or(size, |wrap| wrap.min(size));
    for (from, to) in [(0, wrap), (wrap, size)] {
        let sum = seed.wrapping_add(u64::try_from(from).unwrap_or_default().wrapping_mul(31));
        let mut letter = u8::try_from(sum % 26).unwrap_or_default();
        let stepped = (to - from).min(BODY_PERIOD);
        for index in from..from + stepped {
            bytes.push(if index % 64 == 63 { b'\n' } else { b'a' + letter });
            letter = if letter >= 21 { letter - 21 } else { letter + 5 };
        }
        // Copy what is made, doubling, so every copy starts a whole number of periods on.
        let segment = start + from;
        let mut made = stepped;
        while made < to - from {
            let chunk = (to - from - made).min(made);
            bytes.extend_from_within(segment..segment + chunk);
            made += chunk;
        }
    }
}

/// Runs the server until the simulation ends.
pub async fn run(shared: SharedRef, timers: Timers, swarm: Swarm, seed: u64) -> turmoil::Result {
    let listener = TcpListener::bind(("0.0.0.0", WEB_PORT)).await?;
    loop {
        let (socket, _) = listener.accept().await?;
        tokio::task::spawn_local(serve(socket, shared.clone(), timers.clone(), swarm, seed));
    }
}

/// Answers one connection: one request, then it closes.
async fn serve(mut socket: TcpStream, shared: SharedRef, timers: Timers, swarm: Swarm, seed: u64) {
    let Ok(Some(path)) = timers.timeout(HEAD_TIMEOUT, read_path(&mut socket)).await else { return };
    let response = response(&path);
    // Each path's behaviour is its own draw, whatever order connections come in.
    let mut rng = StdRng::seed_from_u64(seed ^ fnv(path.as_bytes()));
    let slow = rng.random_bool(swarm.egress_slow_rate);
    let end = if rng.random_bool(swarm.egress_truncate_rate) {
        rng.random_range(0..response.len().max(1))
    } else {
        response.len()
    };
    let mut written = 0;
    while written < end {
        let chunk = if slow { rng.random_range(4 * 1024..16 * 1024) } else { 16 * 1024 };
        let upto = written.saturating_add(chunk).min(end);
        let bytes = response.get(written..upto).unwrap_or_default();
        match timers.timeout(WRITE_TIMEOUT, socket.write_all(bytes)).await {
            Ok(Ok(())) => written = upto,
            _ => break,
        }
        if slow {
            timers.sleep(Duration::from_millis(rng.random_range(10..250))).await;
        }
    }
    if written < response.len() {
        shared.borrow_mut().egress.truncated.insert(path, written);
    }
    // Dropping the socket closes it (FIN): the guest reads to the end of what was sent.
}

/// Reads a request head and returns the path of its `GET` (`None`: not a request).
async fn read_path(socket: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = socket.read(&mut buffer).await.ok().filter(|read| *read > 0)?;
        head.extend_from_slice(buffer.get(..read).unwrap_or_default());
        if head.len() > MAX_HEAD_BYTES {
            return None;
        }
    }
    let line = head.split(|byte| *byte == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("GET"), Some(path), Some("HTTP/1.0")) => Some(path.to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte `i` of a body, computed directly.
    fn reference(seed: u64, i: u64) -> u8 {
        if i % 64 == 63 {
            b'\n'
        } else {
            b'a' + u8::try_from(i.wrapping_mul(31).wrapping_add(seed) % 26).unwrap_or_default()
        }
    }

    #[test]
    fn a_body_is_its_bytes_computed_one_by_one_even_across_the_wrap() {
        let seeds = [
            0,
            1,
            25,
            fnv(b"/a/b/1000"),
            u64::MAX,
            u64::MAX - 40,
            u64::MAX - 31 * 1000,
            u64::MAX - 31 * 1000 - 17,
            u64::MAX - 31 * 60_000,
        ];
        for seed in seeds {
            for size in [0, 1, 63, 64, 831, 832, 833, 5000, MAX_BODY_BYTES] {
                let mut body = b"head".to_vec();
                push_body(&mut body, seed, size);
                let expected: Vec<u8> =
                    b"head".iter().copied().chain((0..size as u64).map(|i| reference(seed, i))).collect();
                assert!(body == expected, "seed {seed}, size {size}");
            }
        }
    }

    #[test]
    fn a_response_has_the_size_its_path_asks_for_and_an_unsized_path_is_not_found() {
        let response = response("/owner/id/3000");
        let head = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3000\r\n\r\n";
        assert!(response.starts_with(head));
        assert_eq!(response.len(), head.len() + 3000);
        assert!(super::response("/owner/id/x").starts_with(b"HTTP/1.0 404"));
    }
}
