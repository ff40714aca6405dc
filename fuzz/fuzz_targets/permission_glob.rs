//! `PermissionGlob` (globset where it is exact, a hand-written NFA elsewhere) against a naive
//! backtracking reference of the documented semantics: `?` is one byte other than `/`, `*` any
//! run of bytes without `/`, two or more consecutive `*` any run of bytes, everything else a
//! literal byte.
//!
//! Input: byte 0 selects the mode and the pattern/resource split; in "alphabet" mode every
//! further byte picks a piece from [`ALPHABET`] (glob syntax, separators, multi-byte characters,
//! globset-special bytes), otherwise the bytes are taken as (lossy) UTF-8 text.
#![no_main]

use kernel::policy::permissions::PermissionGlob;
use libfuzzer_sys::fuzz_target;

const MAX_PATTERN_BYTES: usize = 96;
const MAX_RESOURCE_BYTES: usize = 192;

const ALPHABET: &[&str] = &[
    "a",
    "b",
    "a",
    "b",
    "/",
    "/",
    "/",
    "*",
    "*",
    "*",
    "**",
    "?",
    "?",
    ".",
    "-",
    "_",
    "[",
    "]",
    "{",
    "}",
    ",",
    "!",
    "^",
    "\\",
    "é",
    "€",
    "\u{0}",
    "\n",
    "A",
    "\u{10348}",
    "/**",
    "**/",
    "*/",
    "/*",
    "?/",
    "..",
    ":",
    "tcp://",
    "\r",
    "$",
    "(",
    ")",
    "|",
    "+",
    "#",
];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let split = (usize::from(mode >> 1) * rest.len()) / 128;
    let (pattern_bytes, resource_bytes) = rest.split_at(split.min(rest.len()));
    let (pattern, resource) = if mode & 1 == 0 {
        (from_alphabet(pattern_bytes), from_alphabet(resource_bytes))
    } else {
        (String::from_utf8_lossy(pattern_bytes).into_owned(), String::from_utf8_lossy(resource_bytes).into_owned())
    };
    let pattern = truncate(pattern, MAX_PATTERN_BYTES);
    let resource = truncate(resource, MAX_RESOURCE_BYTES);

    let expected = naive_match(pattern.as_bytes(), resource.as_bytes());
    let glob = PermissionGlob::new(&pattern);
    assert_eq!(
        glob.is_match(&resource),
        expected,
        "PermissionGlob::new({pattern:?}) (globset: {}) on {resource:?}",
        glob.uses_globset()
    );
    assert_eq!(
        PermissionGlob::new_manual(&pattern).is_match(&resource),
        expected,
        "PermissionGlob::new_manual({pattern:?}) on {resource:?}"
    );
});

fn from_alphabet(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| ALPHABET[usize::from(b) % ALPHABET.len()]).collect()
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Backtracking over (pattern position, input position), memoised so that patterns with many
/// stars stay polynomial. Written from the documented semantics, independently of the kernel.
fn naive_match(pattern: &[u8], input: &[u8]) -> bool {
    let mut memo = vec![None; (pattern.len() + 1) * (input.len() + 1)];
    matches_from(pattern, input, 0, 0, &mut memo)
}

fn matches_from(pattern: &[u8], input: &[u8], p: usize, i: usize, memo: &mut [Option<bool>]) -> bool {
    let key = p * (input.len() + 1) + i;
    if let Some(known) = memo[key] {
        return known;
    }
    let result = match pattern.get(p) {
        None => i == input.len(),
        Some(b'*') => {
            let run = pattern[p..].iter().take_while(|&&c| c == b'*').count();
            let crosses_separator = run >= 2;
            let mut matched = false;
            for k in i..=input.len() {
                // The run may consume input[i..k]; a single star never consumes a `/`.
                if k > i && !crosses_separator && input[k - 1] == b'/' {
                    break;
                }
                if matches_from(pattern, input, p + run, k, memo) {
                    matched = true;
                    break;
                }
            }
            matched
        }
        Some(b'?') => input.get(i).is_some_and(|&c| c != b'/') && matches_from(pattern, input, p + 1, i + 1, memo),
        Some(&c) => input.get(i) == Some(&c) && matches_from(pattern, input, p + 1, i + 1, memo),
    };
    memo[key] = Some(result);
    result
}
