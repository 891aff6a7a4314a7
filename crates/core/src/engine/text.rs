//! Text from outside (alarm names, `Name` tags, event sources) on its way into logs, tables,
//! reasons and the state file: control characters (newlines, ESC sequences that repaint a
//! terminal, forge a log line) and bidirectional overrides are written as escapes, once, here.

use std::borrow::Cow;

/// `s` with every control character and bidirectional override escaped (`\n`, `\u{1b}`).
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_borrowed() {
        assert_eq!(
            printable("bigip-a\n2026-11-29 INFO forged\u{1b}[2J\u{202e}"),
            "bigip-a\\n2026-11-29 INFO forged\\u{1b}[2J\\u{202e}"
        );
        assert!(matches!(
            printable("failover01.www.non-97.net"),
            Cow::Borrowed(_)
        ));
        assert_eq!(printable("zone é ✓"), "zone é ✓");
    }
}
