use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Disposition {
    /// Save to disk: the safe default, since the bytes are whatever the user uploaded.
    #[default]
    Attachment,
    /// Display in the browser, for types that cannot run script (see `UploadPolicy`).
    Inline,
}

impl Disposition {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "attachment" => Some(Self::Attachment),
            "inline" => Some(Self::Inline),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Attachment => "attachment",
            Self::Inline => "inline",
        }
    }
}

/// RFC 5987 `attr-char`: what may stand unencoded in `filename*`.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// The `Content-Disposition` S3 returns with a download (RFC 6266): a plain-ASCII `filename` for
/// old clients and, when that had to lose characters, the exact name as `filename*` in UTF-8.
pub fn content_disposition(disposition: Disposition, filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| match c {
            // `"` and `\` would end or escape the quoted string; `%` is decoded by some browsers.
            '"' | '\\' | '%' => '_',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '_',
        })
        .collect();
    let mut value = format!("{}; filename=\"{fallback}\"", disposition.as_str());
    if fallback != filename {
        value.push_str("; filename*=UTF-8''");
        value.extend(utf8_percent_encode(filename, ATTR_CHAR));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_names_are_quoted_as_they_are() {
        assert_eq!(
            content_disposition(Disposition::Attachment, "report 2024.pdf"),
            "attachment; filename=\"report 2024.pdf\""
        );
        assert_eq!(
            content_disposition(Disposition::Inline, "a.png"),
            "inline; filename=\"a.png\""
        );
    }

    #[test]
    fn non_ascii_names_get_an_rfc5987_form() {
        assert_eq!(
            content_disposition(Disposition::Attachment, "résumé €.pdf"),
            "attachment; filename=\"r_sum_ _.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%E2%82%AC.pdf"
        );
    }

    #[test]
    fn quotes_and_escapes_cannot_break_out_of_the_header_value() {
        let value = content_disposition(Disposition::Attachment, "a\"; filename=evil.html\\%");
        assert_eq!(
            value,
            "attachment; filename=\"a_; filename=evil.html__\"; filename*=UTF-8''a%22%3B%20filename%3Devil.html%5C%25"
        );
    }

    #[test]
    fn dispositions_parse_exactly() {
        assert_eq!(Disposition::parse("inline"), Some(Disposition::Inline));
        assert_eq!(
            Disposition::parse("attachment"),
            Some(Disposition::Attachment)
        );
        assert_eq!(Disposition::parse("Inline"), None);
        assert_eq!(Disposition::parse(""), None);
    }
}
