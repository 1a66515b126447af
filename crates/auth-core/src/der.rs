//! Just enough DER reading to unwrap a PKCS#8 envelope.
//!
//! jsonwebtoken's RSA signer (rust_crypto backend) wants the PKCS#1
//! `RSAPrivateKey`, while keys are imported and stored as PKCS#8. PKCS#8 simply
//! wraps the PKCS#1 structure in an OCTET STRING, so unwrapping is a matter of
//! walking three DER elements. Callers validate the key with ring first; this
//! module only locates bytes and never interprets key material.

const TAG_INTEGER: u8 = 0x02;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_SEQUENCE: u8 = 0x30;

/// Returns the contents of the `privateKey` OCTET STRING of a PKCS#8
/// `PrivateKeyInfo` (RFC 5208) / `OneAsymmetricKey` (RFC 5958).
pub(crate) fn pkcs8_private_key_octets(pkcs8: &[u8]) -> Option<&[u8]> {
    let (private_key_info, trailing) = read_element(pkcs8, TAG_SEQUENCE)?;
    if !trailing.is_empty() {
        return None;
    }
    let (_version, after_version) = read_element(private_key_info, TAG_INTEGER)?;
    let (_algorithm_identifier, after_algorithm) = read_element(after_version, TAG_SEQUENCE)?;
    let (private_key, _optional_attributes) = read_element(after_algorithm, TAG_OCTET_STRING)?;
    Some(private_key)
}

/// Reads one DER element with the expected tag; returns (contents, rest).
fn read_element(input: &[u8], expected_tag: u8) -> Option<(&[u8], &[u8])> {
    let (&tag, after_tag) = input.split_first()?;
    if tag != expected_tag {
        return None;
    }
    let (&first_length_byte, after_first_length_byte) = after_tag.split_first()?;
    let (length, after_length) = if first_length_byte < 0x80 {
        (usize::from(first_length_byte), after_first_length_byte)
    } else {
        let length_byte_count = usize::from(first_length_byte & 0x7f);
        // 0 would be BER's indefinite length; more than 4 bytes of length is
        // far beyond any key and could overflow on small targets.
        if length_byte_count == 0 || length_byte_count > 4 {
            return None;
        }
        let (length_bytes, rest) = after_first_length_byte.split_at_checked(length_byte_count)?;
        let length = length_bytes
            .iter()
            .fold(0usize, |length, &byte| (length << 8) | usize::from(byte));
        (length, rest)
    };
    after_length.split_at_checked(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    // SEQUENCE { INTEGER 0, SEQUENCE { NULL }, OCTET STRING 'abc' }
    const MINIMAL: [u8; 14] = [
        0x30, 0x0c, 0x02, 0x01, 0x00, 0x30, 0x02, 0x05, 0x00, 0x04, 0x03, b'a', b'b', b'c',
    ];

    #[test]
    fn extracts_the_private_key_octets() {
        assert_eq!(pkcs8_private_key_octets(&MINIMAL), Some(&b"abc"[..]));
    }

    #[test]
    fn extracts_pkcs1_from_a_real_rsa_key() {
        let pkcs8 = include_bytes!("../tests/data/rsa2048.pk8.der");
        let pkcs1 = pkcs8_private_key_octets(pkcs8).unwrap();
        // RSAPrivateKey is itself a SEQUENCE that ring accepts as PKCS#1.
        assert_eq!(pkcs1[0], TAG_SEQUENCE);
        assert!(ring::signature::RsaKeyPair::from_der(pkcs1).is_ok());
    }

    #[test]
    fn reads_long_form_lengths() {
        let mut long = vec![0x04, 0x81, 200];
        long.extend(std::iter::repeat_n(7u8, 200));
        let (contents, rest) = read_element(&long, TAG_OCTET_STRING).unwrap();
        assert_eq!(contents.len(), 200);
        assert!(rest.is_empty());
    }

    #[test]
    fn refuses_truncated_or_odd_input_without_panicking() {
        for cut in 0..MINIMAL.len() {
            assert_eq!(
                pkcs8_private_key_octets(&MINIMAL[..cut]),
                None,
                "cut at {cut}"
            );
        }
        let mut trailing = MINIMAL.to_vec();
        trailing.push(0);
        assert_eq!(pkcs8_private_key_octets(&trailing), None);
        assert_eq!(
            read_element(&[0x04, 0x80, 0x00, 0x00], TAG_OCTET_STRING),
            None
        );
        assert_eq!(
            read_element(&[0x04, 0x85, 1, 1, 1, 1, 1], TAG_OCTET_STRING),
            None
        );
        assert_eq!(
            read_element(&[0x04, 0x84, 0xff, 0xff, 0xff, 0xff], TAG_OCTET_STRING),
            None
        );
        assert_eq!(read_element(&[0x02, 0x00], TAG_OCTET_STRING), None);
    }
}
