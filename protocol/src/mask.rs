//! Masking (RFC 6455 §5.3): every byte of a client's payload is XORed with
//! the frame's 4-byte key, the key repeating. Done a word at a time.

/// XORs `buf` with `key`, as the part of a payload that starts `offset`
/// bytes in (the key repeats from the payload's first byte). Masking and
/// unmasking are the same operation.
pub fn apply(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotated(key, offset);
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        // `chunks_exact_mut(8)` yields 8-byte slices only.
        let bytes: [u8; 8] = (*chunk).try_into().unwrap_or([0; 8]);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

/// The key as it applies from `offset` bytes into the payload.
fn rotated(key: [u8; 4], offset: usize) -> [u8; 4] {
    let r = offset % 4;
    [key[r], key[(r + 1) % 4], key[(r + 2) % 4], key[(r + 3) % 4]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn word_at_a_time_is_bytewise_at_every_length_and_offset() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..40 {
            for offset in 0..8 {
                let data: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(31)).collect();
                let (mut fast, mut slow) = (data.clone(), data.clone());
                apply(&mut fast, key, offset);
                bytewise(&mut slow, key, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
                apply(&mut fast, key, offset);
                assert_eq!(fast, data, "masking twice is the identity");
            }
        }
    }

    #[test]
    fn a_payload_masked_in_pieces_equals_one_masked_whole() {
        // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut whole = *b"Hello";
        apply(&mut whole, key, 0);
        assert_eq!(whole, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
        let mut pieces = *b"Hello";
        let (a, b) = pieces.split_at_mut(3);
        apply(a, key, 0);
        apply(b, key, 3);
        assert_eq!(pieces, whole);
    }
}
