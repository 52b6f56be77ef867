//! UTF-8 checked as a text message arrives, fragment by fragment, so that
//! an invalid sequence fails at once (RFC 6455 §8.1: 1007) rather than
//! when the message is complete.

/// The state between fragments: a sequence cut by a fragment boundary.
#[derive(Clone, Copy, Debug, Default)]
pub struct Utf8 {
    carry: [u8; 4],
    carried: usize,
}

/// Invalid UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8 {
    /// Checks the next bytes of the text. Fails as soon as they cannot be
    /// the start of valid UTF-8, even before the sequence is complete.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), InvalidUtf8> {
        if self.carried > 0 {
            let need = width(self.carry[0]);
            let take = (need - self.carried).min(bytes.len());
            let mut seq = self.carry;
            seq[self.carried..self.carried + take].copy_from_slice(&bytes[..take]);
            let have = self.carried + take;
            match std::str::from_utf8(&seq[..have]) {
                Ok(_) => self.carried = 0,
                Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
                // Still a valid start, and these bytes are all there is.
                Err(_) => {
                    self.carry = seq;
                    self.carried = have;
                    return Ok(());
                }
            }
            bytes = &bytes[take..];
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(e) => {
                let tail = &bytes[e.valid_up_to()..];
                self.carry[..tail.len()].copy_from_slice(tail);
                self.carried = tail.len();
                Ok(())
            }
        }
    }

    /// The text is complete: no sequence may be left open.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let open = std::mem::take(&mut self.carried);
        if open == 0 { Ok(()) } else { Err(InvalidUtf8) }
    }
}

/// The length of the sequence a leading byte starts (a valid prefix's
/// leading byte is always one of these).
fn width(lead: u8) -> usize {
    match lead {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed(pieces: &[&[u8]]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8::default();
        for p in pieces {
            v.feed(p)?;
        }
        v.finish()
    }

    #[test]
    fn any_split_of_valid_text_is_valid() {
        let text = "κόσμε — ascii, 中文, 🎉 and \u{10ffff}".as_bytes();
        for i in 0..=text.len() {
            for j in i..=text.len() {
                assert_eq!(
                    fed(&[&text[..i], &text[i..j], &text[j..]]),
                    Ok(()),
                    "{i} {j}"
                );
            }
        }
    }

    #[test]
    fn invalid_sequences_fail_as_soon_as_they_are_seen() {
        let mut v = Utf8::default();
        // 0xf4 0x90 starts a code point above U+10FFFF: wrong at its 2nd byte.
        assert_eq!(v.feed(&[b'a', 0xf4]), Ok(()));
        assert_eq!(v.feed(&[0x90]), Err(InvalidUtf8));
        let mut v = Utf8::default();
        assert_eq!(v.feed(&[0xed, 0xa0]), Err(InvalidUtf8), "a surrogate");
        let mut v = Utf8::default();
        assert_eq!(v.feed(&[0xc0]), Err(InvalidUtf8), "an overlong lead");
        assert_eq!(fed(&[&[0xe2, 0x82]]), Err(InvalidUtf8), "cut at the end");
        assert_eq!(fed(&[&[0xe2], &[0x82], &[0xac]]), Ok(()), "€ byte by byte");
        assert_eq!(fed(&[&[0xff]]), Err(InvalidUtf8));
    }
}
