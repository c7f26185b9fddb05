//! Server-sent events: an incremental parser and an encoder.
//!
//! The parser follows the WHATWG "event stream interpretation" rules: `\n`, `\r\n` and `\r` line
//! ends (also when a `\r\n` pair is split across two chunks), comment lines starting with `:`,
//! fields without a colon (value is empty), a single optional space after the colon, a UTF-8 BOM
//! at the very start of the stream, and `data` lines joined with `\n`. Invalid UTF-8 is replaced
//! with U+FFFD, as browsers do.
//!
//! Two deliberate differences from the browser algorithm, both useful for a proxy:
//! - [`SseEvent::id`] and [`SseEvent::retry`] are the fields set *in that event's block*, not the
//!   sticky "last event id", so re-encoding an event reproduces what the upstream sent.
//! - [`SseParser::finish`] dispatches a trailing event that the upstream did not terminate with a
//!   blank line (some servers end with `data: [DONE]` and close).

use bytes::Bytes;

/// The default maximum size of one event (all of its lines, including field names), 16 MiB.
pub const DEFAULT_MAX_EVENT_SIZE: usize = 16 * 1024 * 1024;

/// One server-sent event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `None` means the default type `message`.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field of this event, if it had one.
    pub id: Option<String>,
    /// The `retry:` field of this event, if it had a valid one.
    pub retry: Option<u64>,
}

impl SseEvent {
    /// An unnamed event carrying `data` (the OpenAI streaming shape).
    pub fn data(data: impl Into<String>) -> Self {
        Self {
            data: data.into(),
            ..Self::default()
        }
    }

    /// A named event (the Anthropic streaming shape: `event: message_start`).
    pub fn named(name: impl Into<String>, data: impl Into<String>) -> Self {
        Self {
            event: Some(name.into()),
            data: data.into(),
            ..Self::default()
        }
    }

    /// Whether this is the OpenAI end-of-stream sentinel `data: [DONE]`.
    pub fn is_done(&self) -> bool {
        self.data.trim() == "[DONE]"
    }

    /// The event name, `message` when none was given.
    pub fn event_name(&self) -> &str {
        self.event.as_deref().unwrap_or("message")
    }

    /// Encodes the event: `event:`, `id:` and `retry:` lines when set, one `data:` line per line
    /// of `data` (so a parser joins them back), then the blank line that ends the event.
    ///
    /// Any of `\r\n`, `\r` or `\n` inside `data` starts a new `data:` line (the parser reads all
    /// three as line ends, so they come back as `\n`). Line breaks inside `event` and `id` would
    /// break the framing and are removed.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = String::with_capacity(self.data.len() + 32);
        if let Some(event) = &self.event {
            out.push_str("event: ");
            push_single_line(&mut out, event);
            out.push('\n');
        }
        if let Some(id) = &self.id {
            out.push_str("id: ");
            push_single_line(&mut out, id);
            out.push('\n');
        }
        if let Some(retry) = self.retry {
            out.push_str("retry: ");
            out.push_str(&retry.to_string());
            out.push('\n');
        }
        for line in split_lines(&self.data) {
            out.push_str("data: ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
        Bytes::from(out)
    }
}

fn push_single_line(out: &mut String, value: &str) {
    out.extend(value.chars().filter(|c| *c != '\r' && *c != '\n'));
}

/// Splits on `\r\n`, `\r` and `\n`; always yields at least one (possibly empty) line.
fn split_lines(s: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                lines.push(&s[start..i]);
                i += 1;
                start = i;
            }
            b'\r' => {
                lines.push(&s[start..i]);
                i += if bytes.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = i;
            }
            _ => i += 1,
        }
    }
    lines.push(&s[start..]);
    lines
}

/// Errors from [`SseParser`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// One event (or one line) grew past the configured maximum. The parser stays failed.
    #[error("server-sent event larger than {limit} bytes")]
    TooLarge {
        /// The configured maximum event size in bytes.
        limit: usize,
    },
}

/// An incremental server-sent events parser: feed it chunks as they arrive.
#[derive(Debug)]
pub struct SseParser {
    max_event_size: usize,
    /// The current incomplete line.
    line: Vec<u8>,
    /// Bytes of the complete lines of the event being built.
    event_bytes: usize,
    /// The previous chunk ended in `\r`: a leading `\n` belongs to the same line end.
    skip_lf: bool,
    /// No line has been completed yet (the BOM may still be at the start of `line`).
    at_start: bool,
    failed: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
    retry: Option<u64>,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    /// A parser with the default maximum event size ([`DEFAULT_MAX_EVENT_SIZE`]).
    pub fn new() -> Self {
        Self::with_max_event_size(DEFAULT_MAX_EVENT_SIZE)
    }

    /// A parser that fails with [`SseError::TooLarge`] once one event exceeds `max` bytes.
    pub fn with_max_event_size(max: usize) -> Self {
        Self {
            max_event_size: max,
            line: Vec::new(),
            event_bytes: 0,
            skip_lf: false,
            at_start: true,
            failed: false,
            event: None,
            data: String::new(),
            has_data: false,
            id: None,
            retry: None,
        }
    }

    /// The configured maximum event size in bytes.
    pub fn max_event_size(&self) -> usize {
        self.max_event_size
    }

    /// Feeds one chunk and returns the events it completed, in order.
    ///
    /// # Errors
    /// [`SseError::TooLarge`] when an event exceeds the maximum size; the parser then stays
    /// failed and returns the same error for every further chunk.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        if self.failed {
            return Err(self.too_large());
        }
        let mut out = Vec::new();
        let mut i = 0;
        while i < chunk.len() {
            if self.skip_lf {
                self.skip_lf = false;
                if chunk[i] == b'\n' {
                    i += 1;
                    continue;
                }
            }
            let rest = &chunk[i..];
            match rest.iter().position(|b| *b == b'\n' || *b == b'\r') {
                None => {
                    self.grow_line(rest)?;
                    break;
                }
                Some(pos) => {
                    self.grow_line(&rest[..pos])?;
                    self.skip_lf = rest[pos] == b'\r';
                    i += pos + 1;
                    let line = std::mem::take(&mut self.line);
                    // Comment lines (keep-alives) hold no memory, so they do not count.
                    if line.first() != Some(&b':') {
                        self.event_bytes += line.len() + 1;
                    }
                    if let Some(event) = self.process_line(&line) {
                        out.push(event);
                    }
                    // Keep the allocation for the next line.
                    self.line = line;
                    self.line.clear();
                }
            }
        }
        Ok(out)
    }

    /// Ends the stream: returns the trailing event if the upstream closed without the final blank
    /// line. An event that had no `data` field is not dispatched (as in browsers). The parser is
    /// reset and can be reused for a new stream.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if self.failed {
            return None;
        }
        let line = std::mem::take(&mut self.line);
        let mut event = None;
        if !line.is_empty() {
            event = self.process_line(&line);
        }
        if event.is_none() {
            event = self.dispatch();
        }
        self.skip_lf = false;
        self.at_start = true;
        self.event_bytes = 0;
        event
    }

    fn too_large(&self) -> SseError {
        SseError::TooLarge {
            limit: self.max_event_size,
        }
    }

    fn grow_line(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if self.event_bytes + self.line.len() + bytes.len() > self.max_event_size {
            self.failed = true;
            self.line = Vec::new();
            self.data = String::new();
            return Err(self.too_large());
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn process_line(&mut self, mut line: &[u8]) -> Option<SseEvent> {
        if self.at_start {
            self.at_start = false;
            if let Some(rest) = line.strip_prefix(b"\xEF\xBB\xBF") {
                line = rest;
            }
        }
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None;
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&String::from_utf8_lossy(value));
                self.has_data = true;
            }
            b"id" if !value.contains(&0) => {
                self.id = Some(String::from_utf8_lossy(value).into_owned());
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                // All ASCII digits, so this only fails on overflow; ignore it then.
                if let Ok(retry) = std::str::from_utf8(value).unwrap_or("").parse() {
                    self.retry = Some(retry);
                }
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        self.event_bytes = 0;
        let event = self.event.take();
        let id = self.id.take();
        let retry = self.retry.take();
        if !self.has_data {
            self.data.clear();
            return None;
        }
        self.has_data = false;
        Some(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
            id,
            retry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(input: &[u8]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut events = parser.push(input).unwrap();
        events.extend(parser.finish());
        events
    }

    #[test]
    fn parses_basic_named_and_unnamed_events() {
        let input = b"event: message_start\ndata: {\"a\":1}\n\ndata: hello\n\n";
        assert_eq!(
            parse_all(input),
            vec![
                SseEvent::named("message_start", "{\"a\":1}"),
                SseEvent::data("hello")
            ]
        );
    }

    #[test]
    fn handles_all_line_endings_and_split_crlf() {
        let input = b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r";
        let expected = vec![SseEvent::data("a\nb\nc"), SseEvent::data("d")];
        assert_eq!(parse_all(input), expected);
        // `\r` and `\n` of one CRLF in different chunks must not produce an empty line.
        let mut parser = SseParser::new();
        let mut events = parser.push(b"data: a\r").unwrap();
        events.extend(parser.push(b"\ndata: b\r").unwrap());
        events.extend(parser.push(b"\n\r").unwrap());
        events.extend(parser.push(b"\n").unwrap());
        assert_eq!(events, vec![SseEvent::data("a\nb")]);
    }

    #[test]
    fn comments_fields_without_colon_bom_and_spaces() {
        let input = "\u{feff}: keep-alive\ndata\ndata:no-space\ndata:  two-spaces\nunknown: x\n\n";
        assert_eq!(
            parse_all(input.as_bytes()),
            vec![SseEvent::data("\nno-space\n two-spaces")]
        );
        // A BOM split over chunks is still removed; a BOM later in the stream is not.
        let mut parser = SseParser::new();
        let mut events = parser.push(b"\xEF").unwrap();
        events.extend(
            parser
                .push(b"\xBB\xBFdata: x\n\n\xEF\xBB\xBFdata: y\n\n")
                .unwrap(),
        );
        assert_eq!(events, vec![SseEvent::data("x")]);
    }

    #[test]
    fn id_retry_and_events_without_data() {
        let input =
            b"id: 7\nretry: 1500\ndata: x\n\nevent: ping\n\nretry: x1\nid: a\0b\ndata: y\n\n";
        let events = parse_all(input);
        assert_eq!(
            events,
            vec![
                SseEvent {
                    event: None,
                    data: "x".into(),
                    id: Some("7".into()),
                    retry: Some(1500)
                },
                SseEvent::data("y"),
            ]
        );
    }

    #[test]
    fn finish_dispatches_unterminated_trailing_event() {
        let mut parser = SseParser::new();
        assert_eq!(parser.push(b"data: [DONE]").unwrap(), vec![]);
        let last = parser.finish().unwrap();
        assert!(last.is_done());
        assert_eq!(parser.finish(), None);
        let mut parser = SseParser::new();
        assert_eq!(parser.push(b"data: x\n").unwrap(), vec![]);
        assert_eq!(parser.finish(), Some(SseEvent::data("x")));
    }

    #[test]
    fn too_large_is_an_error_not_unbounded_growth() {
        let mut parser = SseParser::with_max_event_size(64);
        assert!(parser.push(&[b'a'; 40]).is_ok());
        assert_eq!(
            parser.push(&[b'a'; 40]),
            Err(SseError::TooLarge { limit: 64 })
        );
        // Stays failed.
        assert!(parser.push(b"\n\n").is_err());
        // Many small lines of one event count too.
        let mut parser = SseParser::with_max_event_size(64);
        let mut result = Ok(vec![]);
        for _ in 0..10 {
            result = parser.push(b"data: 0123456789\n");
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(SseError::TooLarge { limit: 64 }));
        // Events below the limit keep flowing.
        let mut parser = SseParser::with_max_event_size(64);
        for _ in 0..100 {
            assert_eq!(parser.push(b"data: 0123456789\n\n").unwrap().len(), 1);
        }
    }

    #[test]
    fn encodes_multiline_data_and_fields() {
        let mut ev = SseEvent::named("content_block_delta", "a\nb\r\nc");
        ev.id = Some("1\n2".into());
        ev.retry = Some(10);
        assert_eq!(
            ev.to_bytes(),
            Bytes::from_static(
                b"event: content_block_delta\nid: 12\nretry: 10\ndata: a\ndata: b\ndata: c\n\n"
            )
        );
        assert_eq!(
            SseEvent::data("").to_bytes(),
            Bytes::from_static(b"data: \n\n")
        );
        let parsed = parse_all(&SseEvent::data("").to_bytes());
        assert_eq!(parsed, vec![SseEvent::data("")]);
    }

    fn arb_text() -> impl Strategy<Value = String> {
        // Printable ASCII (including ':' and spaces), a few non-ASCII characters and newlines.
        proptest::collection::vec(
            prop_oneof![
                8 => proptest::char::range(' ', '~'),
                1 => Just('é'),
                1 => Just('🚀'),
                1 => Just('\n'),
            ],
            0..24,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    fn arb_name() -> impl Strategy<Value = String> {
        "[a-z_]{1,12}"
    }

    fn arb_event() -> impl Strategy<Value = SseEvent> {
        (
            proptest::option::of(arb_name()),
            arb_text(),
            proptest::option::of("[a-zA-Z0-9]{0,8}"),
            proptest::option::of(0u64..100_000),
        )
            .prop_map(|(event, data, id, retry)| SseEvent {
                event,
                data,
                id,
                retry,
            })
    }

    /// Encodes with a chosen line ending, optional comments and an optional BOM.
    fn encode(events: &[SseEvent], eol: &str, comments: bool, bom: bool) -> Vec<u8> {
        let mut out = String::new();
        if bom {
            out.push('\u{feff}');
        }
        for ev in events {
            if comments {
                out.push_str(": keep-alive");
                out.push_str(eol);
            }
            let encoded = String::from_utf8(ev.to_bytes().to_vec()).unwrap();
            out.push_str(&encoded.replace('\n', eol));
        }
        out.into_bytes()
    }

    proptest! {
        #[test]
        fn any_split_yields_the_same_events(
            events in proptest::collection::vec(arb_event(), 0..6),
            eol in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
            comments in any::<bool>(),
            bom in any::<bool>(),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..12),
        ) {
            let bytes = encode(&events, eol, comments, bom);
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut parser = SseParser::new();
            let mut parsed = Vec::new();
            let mut start = 0;
            for p in points {
                parsed.extend(parser.push(&bytes[start..p]).unwrap());
                start = p;
            }
            parsed.extend(parser.push(&bytes[start..]).unwrap());
            parsed.extend(parser.finish());
            prop_assert_eq!(parsed, events);
        }
    }
}
