//! HTTP/1.1 for `VmFetch`: the host asks the kernel to send one request to a guest's TCP listener
//! and return the guest's answer. The kernel moves the bytes; this module only turns the host's
//! request into bytes ([`encode_request`]) and the guest's bytes into a [`Response`]
//! ([`ResponseParser`]), then into the wire JSON ([`response_json`]).
//!
//! Both directions are sans-IO: no sockets, no clock, no allocation driven by a number the guest
//! wrote. Every request carries `Connection: close`, so one connection serves exactly one
//! exchange and "end of stream" is a valid way for the guest to end a body.

use base64::Engine as _;

/// Longest accepted request method, in bytes. The longest registered methods are 16 bytes
/// (`BASELINE-CONTROL`); twice that leaves room for extension methods while keeping the request
/// line bounded.
const MAX_METHOD_BYTES: usize = 32;

/// Longest accepted request target, in bytes (8 KiB). RFC 9112 §3 asks servers to support at
/// least 8000 octets of request line, and common servers refuse much beyond 8 KiB, so a longer
/// path would only produce a confusing 414 from the guest.
const MAX_PATH_BYTES: usize = 8 * 1024;

/// Most header lines the caller may send (arrays count one per element). Far beyond any real
/// fetch, and keeps the request head within what guest servers accept by default (Node.js caps
/// the whole head at 16 KiB).
const MAX_REQUEST_HEADERS: usize = 100;

/// Longest accepted `headersJson`, in bytes (64 KiB), checked before the JSON is parsed so an
/// oversized document costs nothing.
const MAX_HEADERS_JSON_BYTES: usize = 64 * 1024;

/// Most header fields accepted in one response head. `httparse` parses into a fixed array of
/// this size on the stack; 100 is hyper's default for the same reason.
const MAX_RESPONSE_HEADERS: usize = 100;

/// Most hex digits accepted in a chunk size. A 64-bit size has 16; more can only be padding
/// zeros or an overflow, and refusing them keeps the size line cheap to parse.
const MAX_CHUNK_SIZE_HEX_DIGITS: usize = 16;

/// Why a request could not be encoded or a response could not be parsed. The message is for a
/// human: it ends up in the host's rejection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HttpError {
    #[error("the request method must be an HTTP token of 1 to {MAX_METHOD_BYTES} bytes")]
    InvalidMethod,
    #[error("the request path must be at most {MAX_PATH_BYTES} bytes with no spaces or control characters")]
    InvalidPath,
    #[error("headersJson must be a JSON object of header names to values: {0}")]
    InvalidHeadersJson(String),
    #[error("headersJson is longer than {MAX_HEADERS_JSON_BYTES} bytes")]
    HeadersJsonTooLarge,
    #[error("at most {MAX_REQUEST_HEADERS} request headers may be given")]
    TooManyRequestHeaders,
    #[error("the request header name {0:?} is not an HTTP token")]
    InvalidHeaderName(String),
    #[error("the value of request header {0:?} contains CR, LF or NUL")]
    InvalidHeaderValue(String),
    #[error("the value of request header {0:?} must be a string, number, boolean or an array of those")]
    UnsupportedHeaderValue(String),
    #[error("the request header {0:?} cannot be given: the kernel sets the message framing and connection")]
    ReservedHeader(String),
    #[error("the guest sent a malformed response head: {0}")]
    MalformedHead(httparse::Error),
    #[error("the guest's response head has more than {MAX_RESPONSE_HEADERS} header fields")]
    TooManyResponseHeaders,
    #[error("the guest's response has an invalid or inconsistent Content-Length")]
    InvalidContentLength,
    #[error("the guest's response uses the transfer coding {0:?}; only \"chunked\" is supported")]
    UnsupportedTransferEncoding(String),
    #[error("the guest sent a malformed chunked body: {0}")]
    MalformedChunk(&'static str),
    #[error("the guest's response exceeds the limit of {limit} bytes")]
    ResponseTooLarge { limit: usize },
    #[error("the guest closed the connection before a complete response")]
    ClosedBeforeResponse,
    #[error("the guest closed the connection before the end of the response body")]
    TruncatedBody,
    #[error("the response parser already returned a response or an error")]
    ParserFinished,
}

/// Encodes the host's `VmFetch` request as HTTP/1.1 bytes for a guest listening on `port`.
///
/// The head is the request line, `Host: 127.0.0.1:PORT` (unless the caller gave a `Host`), the
/// caller's headers, `Content-Length` when there is a body, and `Connection: close`. Header
/// lines follow the JSON object's key order as `serde_json` keeps it, which (without its
/// `preserve_order` feature) is sorted by name; HTTP gives no meaning to the order of distinct
/// fields, and an array value keeps its element order.
///
/// The caller's `Content-Length`, `Transfer-Encoding` and `Connection` are refused rather than
/// merged: the kernel owns framing and connection lifetime, and a conflicting value would make
/// the guest wait for bytes that never come or keep the connection open.
pub(crate) fn encode_request(
    port: u16,
    method: &str,
    path: &str,
    headers_json: &str,
    body: Option<&str>,
) -> Result<Vec<u8>, HttpError> {
    if method.is_empty() || method.len() > MAX_METHOD_BYTES || !method.bytes().all(is_tchar) {
        return Err(HttpError::InvalidMethod);
    }
    let slash = if path.starts_with('/') { "" } else { "/" };
    let path_len = path.len().saturating_add(slash.len());
    if path_len > MAX_PATH_BYTES || path.bytes().any(|b| b < 0x21 || b == 0x7f) {
        return Err(HttpError::InvalidPath);
    }
    let headers = parse_headers_json(headers_json)?;

    let mut head = String::new();
    for part in [method, " ", slash, path, " HTTP/1.1\r\n"] {
        head.push_str(part);
    }
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
        head.push_str("Host: 127.0.0.1:");
        head.push_str(&port.to_string());
        head.push_str("\r\n");
    }
    for (name, value) in &headers {
        for part in [name.as_str(), ": ", value.as_str(), "\r\n"] {
            head.push_str(part);
        }
    }
    if let Some(body) = body {
        head.push_str("Content-Length: ");
        head.push_str(&body.len().to_string());
        head.push_str("\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");

    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default().as_bytes());
    Ok(bytes)
}

/// Turns `headersJson` into `(name, value)` lines, validating each. An empty (or all-whitespace)
/// string means no headers, since hosts often send `""` rather than `{}`.
fn parse_headers_json(headers_json: &str) -> Result<Vec<(String, String)>, HttpError> {
    if headers_json.len() > MAX_HEADERS_JSON_BYTES {
        return Err(HttpError::HeadersJsonTooLarge);
    }
    if headers_json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let value: serde_json::Value =
        serde_json::from_str(headers_json).map_err(|error| HttpError::InvalidHeadersJson(error.to_string()))?;
    let serde_json::Value::Object(map) = value else {
        return Err(HttpError::InvalidHeadersJson("the document is not an object".to_owned()));
    };

    let mut lines = Vec::new();
    for (name, value) in map {
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(HttpError::InvalidHeaderName(name));
        }
        if ["content-length", "transfer-encoding", "connection"].iter().any(|r| name.eq_ignore_ascii_case(r)) {
            return Err(HttpError::ReservedHeader(name));
        }
        let values = match value {
            serde_json::Value::Array(items) => items,
            scalar => vec![scalar],
        };
        for item in values {
            let text = match item {
                serde_json::Value::String(text) => text,
                serde_json::Value::Number(number) => number.to_string(),
                serde_json::Value::Bool(flag) => flag.to_string(),
                serde_json::Value::Null | serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                    return Err(HttpError::UnsupportedHeaderValue(name));
                }
            };
            if text.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                return Err(HttpError::InvalidHeaderValue(name));
            }
            if lines.len() >= MAX_REQUEST_HEADERS {
                return Err(HttpError::TooManyRequestHeaders);
            }
            lines.push((name.clone(), text));
        }
    }
    Ok(lines)
}

/// RFC 9110 §5.6.2 `tchar`: the bytes allowed in a method or a field name.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// A guest's final response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) status: u16,
    /// The reason phrase; empty when the guest sent none or sent non-ASCII bytes in it.
    pub(crate) reason: String,
    /// Field names exactly as sent, values decoded as lossy UTF-8, in the order received.
    pub(crate) headers: Vec<(String, String)>,
    /// The body with any chunked framing removed.
    pub(crate) body: Vec<u8>,
}

/// What [`ResponseParser::feed`] achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Keep reading: the response is not complete yet (or ends only at end of stream).
    NeedMore,
    /// The response is complete; any later bytes from the guest are not part of it.
    Done(Response),
}

/// Parses one HTTP/1.1 response incrementally, as the kernel receives the guest's bytes.
///
/// Framing follows RFC 9112 §6.3: interim 1xx responses (other than 101) are skipped; 101, 204,
/// 304 and responses to `HEAD` (or a 2xx to `CONNECT`) have no body; otherwise `chunked`,
/// then `Content-Length`, then end of stream delimit it.
///
/// `max_bytes` bounds every byte taken from the stream for this exchange (interim heads, the
/// final head, chunk framing and body), which in turn bounds what the parser buffers. A declared
/// length beyond it is refused as soon as it is read, before any of that body arrives.
#[derive(Debug)]
pub(crate) struct ResponseParser {
    budget: Budget,
    request: RequestKind,
    state: State,
}

/// The request method facts that change response framing (RFC 9112 §6.3 items 1 and 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestKind {
    Head,
    Connect,
    Other,
}

#[derive(Debug)]
struct Budget {
    used_bytes: usize,
    max_bytes: usize,
}

impl Budget {
    fn remaining(&self) -> usize {
        self.max_bytes.saturating_sub(self.used_bytes)
    }

    /// Accounts for `bytes` more bytes, refusing before they are buffered.
    fn take(&mut self, bytes: usize) -> Result<(), HttpError> {
        match self.used_bytes.checked_add(bytes) {
            Some(used) if used <= self.max_bytes => {
                self.used_bytes = used;
                Ok(())
            }
            _ => Err(self.exceeded()),
        }
    }

    fn exceeded(&self) -> HttpError {
        HttpError::ResponseTooLarge { limit: self.max_bytes }
    }
}

#[derive(Debug)]
enum State {
    /// Collecting a head. `searched` is how many bytes of `buf` have been checked for the empty
    /// line ending it, so each byte is scanned once however the input is split.
    Head {
        buf: Vec<u8>,
        searched: usize,
    },
    Body {
        head: Head,
        body: Vec<u8>,
        framing: Framing,
    },
    Finished,
}

#[derive(Debug)]
struct Head {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn into_response(self, body: Vec<u8>) -> Response {
        Response { status: self.status, reason: self.reason, headers: self.headers, body }
    }
}

#[derive(Debug)]
enum Framing {
    Length { remaining: usize },
    Chunked { line: Vec<u8>, step: ChunkStep },
    UntilClose,
}

#[derive(Debug, Clone, Copy)]
enum ChunkStep {
    Size,
    Data { remaining: usize },
    DataEnd,
    Trailers,
}

/// The outcome of one step of the state machine.
enum Step {
    NeedMore,
    Continue,
    Done(Response),
}

impl ResponseParser {
    /// A parser for the response to any method but `HEAD` and `CONNECT`.
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            budget: Budget { used_bytes: 0, max_bytes },
            request: RequestKind::Other,
            state: State::Head { buf: Vec::new(), searched: 0 },
        }
    }

    /// A parser for the response to `method`: a response to `HEAD` never has a body whatever
    /// its `Content-Length` says, and a 2xx to `CONNECT` turns the connection into a tunnel.
    pub(crate) fn for_method(method: &str, max_bytes: usize) -> Self {
        let mut parser = Self::new(max_bytes);
        parser.request = match method {
            "HEAD" => RequestKind::Head,
            "CONNECT" => RequestKind::Connect,
            _ => RequestKind::Other,
        };
        parser
    }

    /// Takes the next bytes from the guest. After `Done` or an error the parser is spent.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<Progress, HttpError> {
        let mut input = bytes;
        loop {
            let step = match self.step(&mut input) {
                Ok(step) => step,
                Err(error) => {
                    self.state = State::Finished;
                    return Err(error);
                }
            };
            match step {
                Step::Continue => {}
                Step::NeedMore => return Ok(Progress::NeedMore),
                Step::Done(response) => {
                    self.state = State::Finished;
                    return Ok(Progress::Done(response));
                }
            }
        }
    }

    /// The guest ended the stream: completes a body delimited by end of stream, and refuses
    /// anything cut short.
    pub(crate) fn finish(&mut self) -> Result<Response, HttpError> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Head { .. } => Err(HttpError::ClosedBeforeResponse),
            State::Body { head, body, framing: Framing::UntilClose } => Ok(head.into_response(body)),
            State::Body { .. } => Err(HttpError::TruncatedBody),
            State::Finished => Err(HttpError::ParserFinished),
        }
    }

    fn step(&mut self, input: &mut &[u8]) -> Result<Step, HttpError> {
        let Self { budget, request, state } = self;
        match state {
            State::Finished => Err(HttpError::ParserFinished),
            State::Head { buf, searched } => {
                if input.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let room = budget.remaining();
                let take = input.len().min(room);
                budget.take(take)?;
                let (now, rest) = input.split_at_checked(take).unwrap_or((input, &[]));
                let old_len = buf.len();
                buf.extend_from_slice(now);
                let Some(end) = find_head_end(buf, *searched) else {
                    *searched = buf.len();
                    *input = rest;
                    return if rest.is_empty() { Ok(Step::NeedMore) } else { Err(budget.exceeded()) };
                };
                // Give back what follows the head: it is body (or the next head) and is taken
                // again, and accounted again, by the next step.
                let excess = buf.len().saturating_sub(end);
                budget.used_bytes = budget.used_bytes.saturating_sub(excess);
                *input = input.get(end.saturating_sub(old_len)..).unwrap_or_default();
                buf.truncate(end);
                *searched = end;
                let Some(head) = parse_head(buf)? else {
                    // Only empty lines so far, which may precede the status line. Drop them, so
                    // a guest sending endless empty lines costs one short parse per line rather
                    // than a re-parse of everything so far.
                    buf.clear();
                    *searched = 0;
                    return Ok(Step::Continue);
                };
                match start_body(head, *request, budget)? {
                    BodyStart::Interim => {
                        buf.clear();
                        *searched = 0;
                        Ok(Step::Continue)
                    }
                    BodyStart::Complete(response) => Ok(Step::Done(response)),
                    BodyStart::Body(head, framing) => {
                        *state = State::Body { head, body: Vec::new(), framing };
                        Ok(Step::Continue)
                    }
                }
            }
            State::Body { body, framing, .. } => match framing {
                Framing::UntilClose => {
                    budget.take(input.len())?;
                    body.extend_from_slice(input);
                    *input = &[];
                    Ok(Step::NeedMore)
                }
                Framing::Length { remaining } => {
                    copy_body(input, remaining, body, budget)?;
                    if *remaining == 0 {
                        Ok(Step::Done(take_response(state)?))
                    } else {
                        Ok(Step::NeedMore)
                    }
                }
                Framing::Chunked { line, step } => match *step {
                    ChunkStep::Data { mut remaining } => {
                        copy_body(input, &mut remaining, body, budget)?;
                        *step = if remaining == 0 { ChunkStep::DataEnd } else { ChunkStep::Data { remaining } };
                        Ok(if input.is_empty() { Step::NeedMore } else { Step::Continue })
                    }
                    ChunkStep::Size | ChunkStep::DataEnd | ChunkStep::Trailers => {
                        if !read_line(line, input, budget)? {
                            return Ok(Step::NeedMore);
                        }
                        let content = line_content(line);
                        let next = match *step {
                            ChunkStep::Size => {
                                let size = parse_chunk_size(content, budget)?;
                                if size == 0 {
                                    ChunkStep::Trailers
                                } else {
                                    ChunkStep::Data { remaining: size }
                                }
                            }
                            ChunkStep::DataEnd if content.is_empty() => ChunkStep::Size,
                            ChunkStep::DataEnd => {
                                return Err(HttpError::MalformedChunk("chunk data is not followed by CRLF"));
                            }
                            ChunkStep::Trailers if content.is_empty() => {
                                return Ok(Step::Done(take_response(state)?));
                            }
                            // A trailer field: skipped, since the response JSON has no place for it.
                            ChunkStep::Trailers | ChunkStep::Data { .. } => ChunkStep::Trailers,
                        };
                        line.clear();
                        *step = next;
                        Ok(Step::Continue)
                    }
                },
            },
        }
    }
}

/// Takes the finished response out of `state`, leaving the parser spent.
fn take_response(state: &mut State) -> Result<Response, HttpError> {
    match std::mem::replace(state, State::Finished) {
        State::Body { head, body, .. } => Ok(head.into_response(body)),
        State::Head { .. } | State::Finished => Err(HttpError::ParserFinished),
    }
}

/// Where the head in `buf` ends: just after the first empty line (`LF LF` or `LF CR LF`) that
/// ends at an index above `searched`. `httparse` accepts both line endings.
fn find_head_end(buf: &[u8], searched: usize) -> Option<usize> {
    (searched.saturating_add(1)..=buf.len()).find(|&end| {
        let ends_with = |tail: &[u8]| end.checked_sub(tail.len()).and_then(|start| buf.get(start..end)) == Some(tail);
        ends_with(b"\n\n") || ends_with(b"\n\r\n")
    })
}

/// Parses a head that ends exactly at the end of `buf`. `None` means `buf` held only the empty
/// lines a sender may put before the status line, so the head is still to come.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, HttpError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut parsed = httparse::Response::new(&mut fields);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Partial) => return Ok(None),
        Ok(httparse::Status::Complete(len)) => len,
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyResponseHeaders),
        Err(error) => return Err(HttpError::MalformedHead(error)),
    };
    // `httparse` ends a head at the same empty line `find_head_end` found; anything else would
    // mean the two disagree about the bytes, so refuse rather than guess.
    let (Some(status), true) = (parsed.code, len == buf.len()) else {
        return Err(HttpError::MalformedHead(httparse::Error::NewLine));
    };
    let headers = parsed
        .headers
        .iter()
        .map(|field| (field.name.to_owned(), String::from_utf8_lossy(field.value).into_owned()))
        .collect();
    Ok(Some(Head { status, reason: parsed.reason.unwrap_or_default().to_owned(), headers }))
}

/// What follows a parsed head.
enum BodyStart {
    /// A 1xx interim response: the final head is still to come.
    Interim,
    /// A response that has no body.
    Complete(Response),
    Body(Head, Framing),
}

/// Decides how the body after `head` is delimited (RFC 9112 §6.3).
fn start_body(head: Head, request: RequestKind, budget: &Budget) -> Result<BodyStart, HttpError> {
    let status = head.status;
    if (100..200).contains(&status) && status != 101 {
        return Ok(BodyStart::Interim);
    }
    let tunnel = request == RequestKind::Connect && (200..300).contains(&status);
    if request == RequestKind::Head || tunnel || matches!(status, 101 | 204 | 304) {
        return Ok(BodyStart::Complete(head.into_response(Vec::new())));
    }

    let mut transfer_encoding: Option<Vec<String>> = None;
    let mut content_lengths = Vec::new();
    for (name, value) in &head.headers {
        if name.eq_ignore_ascii_case("transfer-encoding") {
            let codings = value.split(',').map(trim_ows).filter(|coding| !coding.is_empty());
            transfer_encoding.get_or_insert_with(Vec::new).extend(codings.map(str::to_ascii_lowercase));
        } else if name.eq_ignore_ascii_case("content-length") {
            content_lengths.extend(value.split(',').map(trim_ows));
        }
    }

    // Transfer-Encoding overrides Content-Length. Only `chunked` alone is decoded: any other
    // coding would hand the host bytes it cannot interpret.
    if let Some(codings) = transfer_encoding {
        return match codings.as_slice() {
            [only] if only == "chunked" => {
                Ok(BodyStart::Body(head, Framing::Chunked { line: Vec::new(), step: ChunkStep::Size }))
            }
            _ => Err(HttpError::UnsupportedTransferEncoding(codings.join(", "))),
        };
    }

    // Several Content-Length values (repeated fields or a list) are accepted only when they
    // agree, as RFC 9110 §8.6 allows; disagreeing ones leave the body length unknowable.
    let mut length = None;
    for text in content_lengths {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HttpError::InvalidContentLength);
        }
        // A number too big for usize is also too big for any limit.
        let value = text
            .bytes()
            .try_fold(0_usize, |sum, digit| sum.checked_mul(10)?.checked_add(usize::from(digit - b'0')))
            .ok_or_else(|| budget.exceeded())?;
        if length.is_some_and(|previous| previous != value) {
            return Err(HttpError::InvalidContentLength);
        }
        length = Some(value);
    }
    match length {
        Some(0) => Ok(BodyStart::Complete(head.into_response(Vec::new()))),
        Some(remaining) if remaining > budget.remaining() => Err(budget.exceeded()),
        Some(remaining) => Ok(BodyStart::Body(head, Framing::Length { remaining })),
        None => Ok(BodyStart::Body(head, Framing::UntilClose)),
    }
}

/// Strips RFC 9110 optional whitespace (spaces and tabs) from both ends of a list element.
fn trim_ows(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

/// Moves up to `remaining` body bytes from `input` into `body`.
fn copy_body(
    input: &mut &[u8],
    remaining: &mut usize,
    body: &mut Vec<u8>,
    budget: &mut Budget,
) -> Result<(), HttpError> {
    let take = (*remaining).min(input.len());
    budget.take(take)?;
    let (now, rest) = input.split_at_checked(take).unwrap_or((input, &[]));
    body.extend_from_slice(now);
    *input = rest;
    *remaining = remaining.saturating_sub(take);
    Ok(())
}

/// Moves bytes from `input` into `line` up to and including the next LF; true once it is there.
fn read_line(line: &mut Vec<u8>, input: &mut &[u8], budget: &mut Budget) -> Result<bool, HttpError> {
    let (take, complete) = match input.iter().position(|&b| b == b'\n') {
        Some(index) => (index.saturating_add(1), true),
        None => (input.len(), false),
    };
    budget.take(take)?;
    let (now, rest) = input.split_at_checked(take).unwrap_or((input, &[]));
    line.extend_from_slice(now);
    *input = rest;
    Ok(complete)
}

/// A complete line without its LF or CRLF ending. A bare LF is accepted, as in the head.
fn line_content(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parses `chunk-size [ chunk-ext ]` (RFC 9112 §7.1), ignoring the extensions. A size beyond
/// what the budget has left is refused here, before any of the chunk is read.
fn parse_chunk_size(content: &[u8], budget: &Budget) -> Result<usize, HttpError> {
    let digits = content.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(HttpError::MalformedChunk("a chunk size is missing"));
    }
    if digits > MAX_CHUNK_SIZE_HEX_DIGITS {
        return Err(HttpError::MalformedChunk("a chunk size has too many hex digits"));
    }
    let (hex, rest) = content.split_at_checked(digits).unwrap_or((content, &[]));
    let extensions = rest.iter().position(|&b| b != b' ' && b != b'\t').and_then(|start| rest.get(start..));
    if extensions.is_some_and(|ext| !ext.starts_with(b";")) {
        return Err(HttpError::MalformedChunk("a chunk size is followed by something other than an extension"));
    }
    hex.iter()
        .try_fold(0_usize, |size, &digit| size.checked_mul(16)?.checked_add(usize::from(hex_value(digit))))
        .filter(|&size| size <= budget.remaining())
        .ok_or_else(|| budget.exceeded())
}

/// The value of an ASCII hex digit (the caller has checked that it is one).
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    }
}

/// The host's `VmFetchResponse` payload for `response`, fetched from `url`.
///
/// `headers` pairs lower-cased names with values (what `fetch`'s `Headers` shows) and
/// `rawHeaders` alternates names and values as sent (what Node's `rawHeaders` shows), both in the
/// order received. The body is always base64, since a guest may send any bytes. Keys come out in
/// `serde_json`'s map order, which (without its `preserve_order` feature) is sorted.
pub(crate) fn response_json(response: &Response, url: &str) -> String {
    let headers: Vec<[String; 2]> =
        response.headers.iter().map(|(name, value)| [name.to_ascii_lowercase(), value.clone()]).collect();
    let raw_headers: Vec<&str> =
        response.headers.iter().flat_map(|(name, value)| [name.as_str(), value.as_str()]).collect();
    serde_json::json!({
        "status": response.status,
        "statusText": response.reason,
        "headers": headers,
        "rawHeaders": raw_headers,
        "body": base64::engine::general_purpose::STANDARD.encode(&response.body),
        "bodyEncoding": "base64",
        "url": url,
    })
    .to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A limit far above any test response, for tests that are not about the limit.
    const LARGE_LIMIT_BYTES: usize = 1 << 20;

    fn encode(method: &str, path: &str, headers_json: &str, body: Option<&str>) -> Result<String, HttpError> {
        encode_request(8080, method, path, headers_json, body).map(|bytes| String::from_utf8(bytes).unwrap())
    }

    /// Feeds `bytes` in pieces of the given sizes (cycled; zero-sized pieces included), then
    /// calls `finish` if the parser still wants more. Returns the outcome and whether `Done`
    /// came from `feed` together with how many bytes had been fed by then.
    fn parse_split(bytes: &[u8], sizes: &[usize], limit: usize) -> (Result<Response, HttpError>, Option<usize>) {
        let mut parser = ResponseParser::new(limit);
        let mut fed = 0;
        let mut sizes = sizes.iter().copied().cycle();
        let mut empty_feeds = 0;
        while fed < bytes.len() {
            // Empty pieces are fed too, but a run of them cannot stall the loop.
            let size = match sizes.next().unwrap_or(1) {
                0 if empty_feeds > 2 => 1,
                size => size,
            };
            empty_feeds = if size == 0 { empty_feeds + 1 } else { 0 };
            let size = size.min(bytes.len() - fed);
            let piece = &bytes[fed..fed + size];
            fed += size;
            match parser.feed(piece) {
                Ok(Progress::NeedMore) => {}
                Ok(Progress::Done(response)) => return (Ok(response), Some(fed)),
                Err(error) => return (Err(error), None),
            }
        }
        (parser.finish(), None)
    }

    fn parse_whole(bytes: &[u8]) -> Result<Response, HttpError> {
        parse_split(bytes, &[bytes.len().max(1)], LARGE_LIMIT_BYTES).0
    }

    fn pairs(headers: &[(&str, &str)]) -> Vec<(String, String)> {
        headers.iter().map(|&(name, value)| (name.to_owned(), value.to_owned())).collect()
    }

    #[test]
    fn get_without_body_is_encoded_exactly() {
        assert_eq!(
            encode("GET", "/index.html?q=1", "", None).unwrap(),
            "GET /index.html?q=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\n\r\n"
        );
        // A missing leading slash is added; `{}` is the same as no headers.
        assert_eq!(
            encode("DELETE", "items/7", "{}", None).unwrap(),
            "DELETE /items/7 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            encode("GET", "", "", None).unwrap(),
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn post_with_body_and_array_headers_is_encoded_exactly() {
        let headers =
            r#"{"x-b":["one","two"],"Content-Type":"text/plain; charset=utf-8","x-n":42,"x-t":true,"x-f":1.5}"#;
        assert_eq!(
            encode("POST", "/submit", headers, Some("héllo")).unwrap(),
            "POST /submit HTTP/1.1\r\n\
             Host: 127.0.0.1:8080\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             x-b: one\r\n\
             x-b: two\r\n\
             x-f: 1.5\r\n\
             x-n: 42\r\n\
             x-t: true\r\n\
             Content-Length: 6\r\n\
             Connection: close\r\n\
             \r\n\
             héllo"
        );
        assert_eq!(
            encode("PUT", "/", "", Some("")).unwrap(),
            "PUT / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn a_caller_host_header_replaces_the_default() {
        assert_eq!(
            encode("GET", "/", r#"{"HOST":"example.test"}"#, None).unwrap(),
            "GET / HTTP/1.1\r\nHOST: example.test\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn bad_methods_are_refused() {
        for method in ["", "GE T", "GET\r\n", "G(ET", "GÉT", &"M".repeat(MAX_METHOD_BYTES + 1)] {
            assert_eq!(encode(method, "/", "", None), Err(HttpError::InvalidMethod), "{method:?}");
        }
        assert!(encode(&"M".repeat(MAX_METHOD_BYTES), "/", "", None).is_ok());
        assert!(encode("M-SEARCH", "/", "", None).is_ok());
    }

    #[test]
    fn bad_paths_are_refused() {
        for path in ["/a b", "/a\tb", "/a\r\nX: y", "/\0", "/\x7f", "/\x1b"] {
            assert_eq!(encode("GET", path, "", None), Err(HttpError::InvalidPath), "{path:?}");
        }
        assert_eq!(encode("GET", &"a".repeat(MAX_PATH_BYTES), "", None), Err(HttpError::InvalidPath));
        assert!(encode("GET", &format!("/{}", "a".repeat(MAX_PATH_BYTES - 1)), "", None).is_ok());
        assert!(encode("GET", "/caf\u{e9}", "", None).is_ok());
    }

    #[test]
    fn bad_header_values_are_refused() {
        for value in [r#""a\r\nX-Injected: 1""#, r#""a\nb""#, r#""a\rb""#, r#""a\u0000b""#, r#"["ok","bad\n"]"#] {
            let json = format!(r#"{{"x-v":{value}}}"#);
            assert_eq!(encode("GET", "/", &json, None), Err(HttpError::InvalidHeaderValue("x-v".into())), "{json}");
        }
        for value in ["null", "{}", "[[\"a\"]]", "[null]"] {
            let json = format!(r#"{{"x-v":{value}}}"#);
            assert_eq!(encode("GET", "/", &json, None), Err(HttpError::UnsupportedHeaderValue("x-v".into())));
        }
    }

    #[test]
    fn bad_header_names_are_refused() {
        for name in ["", "a b", "a:b", "a\\r\\nb", "é"] {
            let json = format!(r#"{{"{name}":"v"}}"#);
            assert!(matches!(encode("GET", "/", &json, None), Err(HttpError::InvalidHeaderName(_))), "{json}");
        }
    }

    #[test]
    fn framing_and_connection_headers_from_the_caller_are_refused() {
        for name in ["Content-Length", "content-length", "TRANSFER-ENCODING", "Connection"] {
            let json = format!(r#"{{"{name}":"5"}}"#);
            assert_eq!(encode("POST", "/", &json, Some("hello")), Err(HttpError::ReservedHeader(name.into())));
            assert_eq!(encode("GET", "/", &json, None), Err(HttpError::ReservedHeader(name.into())));
        }
    }

    #[test]
    fn headers_json_that_is_not_an_object_is_refused() {
        for json in ["[]", "\"x\"", "null", "1", "{", "{\"a\":\"b\"} x", " "] {
            let result = encode("GET", "/", json, None);
            if json == " " {
                assert!(result.is_ok(), "whitespace means no headers");
            } else {
                assert!(matches!(result, Err(HttpError::InvalidHeadersJson(_))), "{json}: {result:?}");
            }
        }
    }

    #[test]
    fn too_many_or_too_large_headers_are_refused() {
        let values = |count: usize| format!(r#"{{"x":[{}]}}"#, vec!["\"v\""; count].join(","));
        assert!(encode("GET", "/", &values(MAX_REQUEST_HEADERS), None).is_ok());
        assert_eq!(encode("GET", "/", &values(MAX_REQUEST_HEADERS + 1), None), Err(HttpError::TooManyRequestHeaders));
        let names: Vec<String> = (0..=MAX_REQUEST_HEADERS).map(|i| format!(r#""x-{i}":"v""#)).collect();
        assert_eq!(
            encode("GET", "/", &format!("{{{}}}", names.join(",")), None),
            Err(HttpError::TooManyRequestHeaders)
        );
        let huge = format!(r#"{{"x":"{}"}}"#, "v".repeat(MAX_HEADERS_JSON_BYTES));
        assert_eq!(encode("GET", "/", &huge, None), Err(HttpError::HeadersJsonTooLarge));
    }

    #[test]
    fn content_length_body_fed_one_byte_at_a_time() {
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
        let (result, done_at) = parse_split(bytes, &[1], LARGE_LIMIT_BYTES);
        assert_eq!(done_at, Some(bytes.len()), "Done exactly when the last body byte arrives");
        assert_eq!(
            result.unwrap(),
            Response {
                status: 200,
                reason: "OK".into(),
                headers: pairs(&[("Content-Type", "text/plain"), ("Content-Length", "5")]),
                body: b"hello".to_vec(),
            }
        );
    }

    #[test]
    fn bytes_after_a_complete_response_are_not_part_of_it() {
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiEXTRA";
        assert_eq!(parse_whole(bytes).unwrap().body, b"hi");
    }

    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;name=value\r\nhello\r\n\
        1 ; quoted=\"a;b\"\r\n,\r\n\
        00006\r\n world\r\n\
        0;last\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\n";

    #[test]
    fn chunked_body_with_extensions_and_trailers_in_every_two_way_split() {
        for cut in 0..CHUNKED.len() {
            let mut parser = ResponseParser::new(LARGE_LIMIT_BYTES);
            assert_eq!(parser.feed(&CHUNKED[..cut]).unwrap(), Progress::NeedMore, "cut at {cut}");
            let Progress::Done(response) = parser.feed(&CHUNKED[cut..]).unwrap() else { panic!("cut at {cut}") };
            assert_eq!(response.body, b"hello, world");
            assert_eq!(response.headers, pairs(&[("Transfer-Encoding", "chunked")]));
        }
    }

    proptest! {
        #[test]
        fn chunked_body_with_extensions_and_trailers_in_random_splits(
            sizes in prop::collection::vec(0_usize..12, 1..20),
        ) {
            let (result, done_at) = parse_split(CHUNKED, &sizes, LARGE_LIMIT_BYTES);
            prop_assert_eq!(done_at, Some(CHUNKED.len()));
            prop_assert_eq!(result.unwrap().body, b"hello, world".to_vec());
        }
    }

    #[test]
    fn chunked_with_bare_lf_and_mixed_case_coding() {
        let bytes = b"HTTP/1.1 200 OK\nTransfer-Encoding:  Chunked \n\nA\n0123456789\n0\n\n";
        assert_eq!(parse_whole(bytes).unwrap().body, b"0123456789");
    }

    #[test]
    fn malformed_chunks_are_refused() {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        for (chunks, expected) in [
            ("\r\n", "a chunk size is missing"),
            ("x\r\n", "a chunk size is missing"),
            ("-1\r\n", "a chunk size is missing"),
            ("5 x\r\nhello\r\n0\r\n\r\n", "a chunk size is followed by something other than an extension"),
            ("0x5\r\n", "a chunk size is followed by something other than an extension"),
            ("5\r\nhelloXY\r\n0\r\n\r\n", "chunk data is not followed by CRLF"),
            ("00000000000000001\r\n", "a chunk size has too many hex digits"),
        ] {
            let bytes = format!("{head}{chunks}");
            assert_eq!(parse_whole(bytes.as_bytes()), Err(HttpError::MalformedChunk(expected)), "{chunks:?}");
        }
    }

    #[test]
    fn body_until_close_is_completed_by_finish() {
        let mut parser = ResponseParser::new(LARGE_LIMIT_BYTES);
        assert_eq!(parser.feed(b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nsome ").unwrap(), Progress::NeedMore);
        assert_eq!(parser.feed(b"").unwrap(), Progress::NeedMore);
        assert_eq!(parser.feed(b"bytes").unwrap(), Progress::NeedMore);
        let response = parser.finish().unwrap();
        assert_eq!(response.body, b"some bytes");
        assert_eq!(response.headers, pairs(&[("Server", "x")]));
        assert_eq!(parser.finish(), Err(HttpError::ParserFinished));
    }

    #[test]
    fn interim_responses_are_skipped() {
        let bytes = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
            HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        for size in [1, 7, bytes.len()] {
            let (result, done_at) = parse_split(bytes, &[size], LARGE_LIMIT_BYTES);
            assert_eq!(done_at, Some(bytes.len()));
            let response = result.unwrap();
            assert_eq!((response.status, response.reason.as_str(), response.body.as_slice()), (200, "OK", &b"ok"[..]));
            assert_eq!(response.headers, pairs(&[("Content-Length", "2")]));
        }
    }

    #[test]
    fn leading_empty_lines_before_the_status_line_are_ignored() {
        let bytes = b"\r\n\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
        let (result, done_at) = parse_split(bytes, &[1], LARGE_LIMIT_BYTES);
        assert_eq!((result.unwrap().body, done_at), (b"x".to_vec(), Some(bytes.len())));
    }

    #[test]
    fn leading_empty_lines_are_not_kept() {
        let mut parser = ResponseParser::new(LARGE_LIMIT_BYTES);
        for _ in 0..10_000 {
            assert_eq!(parser.feed(b"\r").unwrap(), Progress::NeedMore);
            assert_eq!(parser.feed(b"\n").unwrap(), Progress::NeedMore);
        }
        assert!(matches!(&parser.state, State::Head { buf, .. } if buf.len() <= 3), "{:?}", parser.state);
        assert_eq!(
            parser.feed(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap(),
            Progress::Done(Response {
                status: 204,
                reason: "No Content".into(),
                headers: Vec::new(),
                body: Vec::new(),
            })
        );
    }

    #[test]
    fn responses_without_a_body_are_done_at_the_end_of_the_head() {
        for status in ["101 Switching Protocols", "204 No Content", "304 Not Modified"] {
            let head = format!("HTTP/1.1 {status}\r\nContent-Length: 10\r\n\r\n");
            let mut parser = ResponseParser::new(LARGE_LIMIT_BYTES);
            let Progress::Done(response) = parser.feed(head.as_bytes()).unwrap() else { panic!("{status}") };
            assert!(response.body.is_empty());
            assert_eq!(parser.feed(b"late"), Err(HttpError::ParserFinished));
        }
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        let Progress::Done(response) = ResponseParser::for_method("HEAD", 100).feed(head).unwrap() else { panic!() };
        assert_eq!((response.status, response.body.len()), (200, 0));
        let Progress::Done(_) = ResponseParser::for_method("CONNECT", 100).feed(head).unwrap() else { panic!() };
        assert_eq!(ResponseParser::for_method("GET", 100).feed(head).unwrap(), Progress::NeedMore);
        let empty = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(ResponseParser::new(100).feed(empty).unwrap(), Progress::Done(_)));
    }

    #[test]
    fn closing_early_is_an_error() {
        let mut parser = ResponseParser::new(LARGE_LIMIT_BYTES);
        assert_eq!(parser.finish(), Err(HttpError::ClosedBeforeResponse));
        assert_eq!(
            HttpError::ClosedBeforeResponse.to_string(),
            "the guest closed the connection before a complete response"
        );
        for partial in [&b"HTTP/1.1 200 OK\r\nContent-Le"[..], b"HTTP/1.1 100 Continue\r\n\r\n"] {
            let mut parser = ResponseParser::new(LARGE_LIMIT_BYTES);
            assert_eq!(parser.feed(partial).unwrap(), Progress::NeedMore);
            assert_eq!(parser.finish(), Err(HttpError::ClosedBeforeResponse));
        }
        for truncated in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhell"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n",
        ] {
            let mut parser = ResponseParser::new(LARGE_LIMIT_BYTES);
            assert_eq!(parser.feed(truncated).unwrap(), Progress::NeedMore);
            assert_eq!(parser.finish(), Err(HttpError::TruncatedBody));
        }
    }

    #[test]
    fn content_length_must_be_one_valid_value() {
        let with = |lengths: &str| format!("HTTP/1.1 200 OK\r\n{lengths}\r\n\r\nhello");
        assert_eq!(parse_whole(with("Content-Length: 5\r\ncontent-length: 5").as_bytes()).unwrap().body, b"hello");
        assert_eq!(parse_whole(with("Content-Length: 5 , 5").as_bytes()).unwrap().body, b"hello");
        for bad in [
            "Content-Length: 5\r\nContent-Length: 4",
            "Content-Length: 5, 4",
            "Content-Length: +5",
            "Content-Length: 0x5",
            "Content-Length:",
            "Content-Length: 5,",
        ] {
            assert_eq!(parse_whole(with(bad).as_bytes()), Err(HttpError::InvalidContentLength), "{bad}");
        }
        // Transfer-Encoding overrides Content-Length, as RFC 9112 §6.3 says.
        let both = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
        assert_eq!(parse_whole(both).unwrap().body, b"hi");
    }

    #[test]
    fn unsupported_transfer_codings_are_refused() {
        for coding in ["gzip", "gzip, chunked", "chunked, chunked", "identity", ""] {
            let bytes = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {coding}\r\n\r\n");
            assert!(
                matches!(parse_whole(bytes.as_bytes()), Err(HttpError::UnsupportedTransferEncoding(_))),
                "{coding}"
            );
        }
    }

    #[test]
    fn malformed_heads_are_refused() {
        assert!(matches!(parse_whole(b"HTTP/2 200 OK\r\n\r\n"), Err(HttpError::MalformedHead(_))));
        assert!(matches!(parse_whole(b"HTTP/1.1 2000 OK\r\n\r\n"), Err(HttpError::MalformedHead(_))));
        assert!(matches!(parse_whole(b"garbage\n\n"), Err(HttpError::MalformedHead(_))));
        let fields: String = (0..=MAX_RESPONSE_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let bytes = format!("HTTP/1.1 200 OK\r\n{fields}\r\n");
        assert_eq!(parse_whole(bytes.as_bytes()), Err(HttpError::TooManyResponseHeaders));
        let fields: String = (0..MAX_RESPONSE_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let bytes = format!("HTTP/1.1 204 No Content\r\n{fields}\r\n");
        assert_eq!(parse_whole(bytes.as_bytes()).unwrap().headers.len(), MAX_RESPONSE_HEADERS);
    }

    #[test]
    fn header_values_are_lossy_utf8_and_names_keep_their_case() {
        let bytes = b"HTTP/1.1 204 No Content\r\nX-Mixed-Case: caf\xc3\xa9 \xff\r\n\r\n";
        assert_eq!(parse_whole(bytes).unwrap().headers, pairs(&[("X-Mixed-Case", "caf\u{e9} \u{fffd}")]));
    }

    #[test]
    fn exceeding_the_limit_is_an_error() {
        let response = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert!(parse_split(response, &[3], response.len()).0.is_ok());
        let too_large = Err(HttpError::ResponseTooLarge { limit: response.len() - 1 });
        for size in [1, 3, response.len()] {
            assert_eq!(parse_split(response, &[size], response.len() - 1).0, too_large, "pieces of {size}");
        }
        // A head that never ends, an until-close body and chunk framing all count.
        let endless = [b'a'; 64];
        assert_eq!(parse_split(b"HTTP/1.1 200 OK\r\nX: ", &[100], 30).0, Err(HttpError::ClosedBeforeResponse));
        let mut parser = ResponseParser::new(30);
        assert_eq!(parser.feed(&endless), Err(HttpError::ResponseTooLarge { limit: 30 }));
        assert_eq!(parser.feed(b"more"), Err(HttpError::ParserFinished));
        let until_close = b"HTTP/1.1 200 OK\r\n\r\n0123456789";
        assert_eq!(
            parse_split(until_close, &[4], until_close.len() - 1).0,
            Err(HttpError::ResponseTooLarge { limit: 28 })
        );
        assert_eq!(
            HttpError::ResponseTooLarge { limit: 28 }.to_string(),
            "the guest's response exceeds the limit of 28 bytes"
        );
    }

    #[test]
    fn huge_declared_lengths_are_refused_before_any_body_arrives() {
        for head in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000000\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nDE0B6B3A7640000\r\n",
        ] {
            let mut parser = ResponseParser::new(LARGE_LIMIT_BYTES);
            assert_eq!(parser.feed(head), Err(HttpError::ResponseTooLarge { limit: LARGE_LIMIT_BYTES }));
        }
        // One byte over what the limit has left after the head is already too much.
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(
            ResponseParser::new(head.len() + 4).feed(head.as_bytes()),
            Err(HttpError::ResponseTooLarge { limit: head.len() + 4 })
        );
        assert_eq!(ResponseParser::new(head.len() + 5).feed(head.as_bytes()).unwrap(), Progress::NeedMore);
    }

    #[test]
    fn response_json_is_exact() {
        let response = Response {
            status: 201,
            reason: "Created".into(),
            headers: pairs(&[("Content-Type", "text/plain"), ("X-Two", "a"), ("x-two", "b")]),
            body: b"hi\xff".to_vec(),
        };
        assert_eq!(
            response_json(&response, "http://127.0.0.1:8080/made"),
            r#"{"body":"aGn/","bodyEncoding":"base64","headers":[["content-type","text/plain"],["x-two","a"],["x-two","b"]],"rawHeaders":["Content-Type","text/plain","X-Two","a","x-two","b"],"status":201,"statusText":"Created","url":"http://127.0.0.1:8080/made"}"#
        );
    }

    /// Framings a random response is encoded with in the round-trip property.
    #[derive(Debug, Clone, Copy)]
    enum TestFraming {
        Length,
        Chunked,
        UntilClose,
    }

    /// Encodes a response the way a guest server might, with `chunk_sizes` (cycled) cutting a
    /// chunked body and an optional interim 100 Continue first.
    fn encode_response(
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
        framing: TestFraming,
        chunk_sizes: &[usize],
        interim: bool,
    ) -> (Vec<u8>, Vec<(String, String)>) {
        let mut all_headers = headers.to_vec();
        match framing {
            TestFraming::Length => all_headers.push(("Content-Length".into(), body.len().to_string())),
            TestFraming::Chunked => all_headers.push(("Transfer-Encoding".into(), "chunked".into())),
            TestFraming::UntilClose => {}
        }
        let mut bytes = Vec::new();
        if interim {
            bytes.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        bytes.extend_from_slice(format!("HTTP/1.1 {status} Some Reason\r\n").as_bytes());
        for (name, value) in &all_headers {
            bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        // 101, 204 and 304 end at the head, whatever framing their fields describe.
        let framing = if matches!(status, 101 | 204 | 304) { TestFraming::UntilClose } else { framing };
        match framing {
            TestFraming::Length | TestFraming::UntilClose => bytes.extend_from_slice(body),
            TestFraming::Chunked => {
                let mut rest = body;
                let mut sizes = chunk_sizes.iter().copied().cycle();
                while !rest.is_empty() {
                    let size = sizes.next().unwrap_or(1).clamp(1, rest.len());
                    bytes.extend_from_slice(format!("{size:x};ext=1\r\n").as_bytes());
                    bytes.extend_from_slice(&rest[..size]);
                    bytes.extend_from_slice(b"\r\n");
                    rest = &rest[size..];
                }
                bytes.extend_from_slice(b"0\r\nTrailer-Field: t\r\n\r\n");
            }
        }
        (bytes, all_headers)
    }

    fn header_strategy() -> impl Strategy<Value = (String, String)> {
        let name = "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}".prop_filter("framing is the encoder's", |name| {
            !name.eq_ignore_ascii_case("content-length") && !name.eq_ignore_ascii_case("transfer-encoding")
        });
        (name, "([!-~]([ !-~]{0,20}[!-~])?)?")
    }

    proptest! {
        #[test]
        fn responses_round_trip_in_every_framing_and_split(
            status in prop_oneof![200_u16..600, Just(101), Just(204), Just(304)],
            headers in prop::collection::vec(header_strategy(), 0..8),
            body in prop::collection::vec(any::<u8>(), 0..300),
            chunk_sizes in prop::collection::vec(1_usize..64, 1..6),
            splits in prop::collection::vec(0_usize..40, 1..12),
            interim in any::<bool>(),
        ) {
            let no_body = matches!(status, 101 | 204 | 304);
            let body = if no_body { Vec::new() } else { body };
            for framing in [TestFraming::Length, TestFraming::Chunked, TestFraming::UntilClose] {
                let (bytes, expected_headers) = encode_response(status, &headers, &body, framing, &chunk_sizes, interim);
                let (result, done_at) = parse_split(&bytes, &splits, LARGE_LIMIT_BYTES);
                let response = result.unwrap();
                prop_assert_eq!(response.status, status);
                prop_assert_eq!(response.reason.as_str(), "Some Reason");
                prop_assert_eq!(&response.headers, &expected_headers);
                prop_assert_eq!(&response.body, &body);
                let ends_at_close = matches!(framing, TestFraming::UntilClose) && !no_body;
                prop_assert_eq!(done_at, if ends_at_close { None } else { Some(bytes.len()) }, "{:?}", framing);
            }
        }

        #[test]
        fn random_bytes_in_random_splits_never_panic(
            prefix in prop_oneof![
                Just(&b""[..]),
                Just(&b"HTTP/1.1 200 OK\r\n"[..]),
                Just(&b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"[..]),
                Just(&b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n"[..]),
                Just(&b"HTTP/1.1 100 Continue\r\n\r\n"[..]),
            ],
            noise in prop::collection::vec(
                prop_oneof![any::<u8>(), prop::sample::select(&b"\r\n0123456789abcdefABCDEF;: HTP/1."[..])],
                0..400,
            ),
            splits in prop::collection::vec(0_usize..50, 1..10),
            limit in 0_usize..600,
        ) {
            let bytes = [prefix, &noise[..]].concat();
            let (result, _) = parse_split(&bytes, &splits, limit);
            if let Ok(response) = result {
                prop_assert!(response.body.len() <= limit);
            }
        }
    }
}
