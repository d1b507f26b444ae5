//! Object keys as S3 writes them into event notifications: URL-encoded, `+` for a space.
//! Shared by `support/mod.rs` and `support/fuzzing.rs` (which the fuzz targets include alone).

pub fn s3_encode(key: &str) -> String {
    const KEY_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(key, KEY_ENCODE)
        .to_string()
        .replace("%20", "+")
}
