//! Names, namespaces and labels, checked as Kubernetes checks them (apimachinery's
//! `util/validation`): keys are built from names, so nothing that is not a name reaches
//! one, and a label a selector cannot match is refused when written, not at read time.
//! Each check names the field it refused; a write answers them all as 422 `Invalid`.

use crate::status::FieldError;
use std::collections::BTreeMap;

/// The longest DNS subdomain (RFC 1123): object names.
const SUBDOMAIN_MAX: usize = 253;
/// The longest DNS label (RFC 1123): namespace names, each part of a subdomain.
const LABEL_MAX: usize = 63;
/// The longest label value, and the longest name part of a label key.
const LABEL_VALUE_MAX: usize = 63;

/// Whether `text` is an RFC 1123 label: lowercase alphanumerics and `-`, starting and
/// ending alphanumeric, at most 63 characters.
fn is_dns_label(text: &str) -> bool {
    let alphanumeric = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes = text.as_bytes();
    matches!((bytes.first(), bytes.last()), (Some(&first), Some(&last)) if alphanumeric(first) && alphanumeric(last))
        && bytes.len() <= LABEL_MAX
        && bytes.iter().all(|&c| alphanumeric(c) || c == b'-')
}

/// Whether `text` is an RFC 1123 subdomain: dot-separated labels, at most 253 characters.
fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= SUBDOMAIN_MAX && text.split('.').all(is_dns_label)
}

/// An object's name, as `field`: a DNS subdomain, as configmaps, secrets and pods have.
pub(crate) fn object_name(field: &str, name: &str) -> Result<(), FieldError> {
    if is_dns_subdomain(name) {
        return Ok(());
    }
    Err(FieldError::invalid(
        field,
        name,
        format!(
            "a lowercase rfc 1123 subdomain must consist of lowercase letters, digits, '-' or '.' between \
             labels that start and end with a letter or digit, at most {SUBDOMAIN_MAX} characters"
        ),
    ))
}

/// A namespace's name: a DNS label.
pub(crate) fn namespace_name(name: &str) -> Result<(), FieldError> {
    if is_dns_label(name) {
        return Ok(());
    }
    Err(FieldError::invalid(
        "metadata.namespace",
        name,
        format!(
            "a lowercase rfc 1123 label must consist of lowercase letters, digits or '-', start and end with \
             a letter or digit, at most {LABEL_MAX} characters"
        ),
    ))
}

/// Whether `text` is a label value: empty, or alphanumerics, `-`, `_` and `.`, starting
/// and ending alphanumeric, at most 63 (the name part of a key, too, though not empty).
pub(crate) fn is_label_value(text: &str) -> bool {
    let bytes = text.as_bytes();
    let alphanumeric = |c: &u8| c.is_ascii_alphanumeric();
    bytes.len() <= LABEL_VALUE_MAX
        && (bytes.is_empty()
            || (bytes.first().is_some_and(alphanumeric)
                && bytes.last().is_some_and(alphanumeric)
                && bytes.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))))
}

/// Whether `key` is a label key: a name (as a value, not empty), perhaps behind a DNS
/// subdomain prefix and `/`.
pub(crate) fn is_label_key(key: &str) -> bool {
    let (prefix, name) = key.split_once('/').map_or((None, key), |(prefix, name)| (Some(prefix), name));
    !name.is_empty() && is_label_value(name) && prefix.is_none_or(is_dns_subdomain)
}

/// The field label errors name.
const LABELS: &str = "metadata.labels";

/// One label: its key and its value. A long value is shown cut short.
pub(crate) fn label(key: &str, value: &str) -> Result<(), FieldError> {
    let shown = |text: &str| text.chars().take(LABEL_VALUE_MAX + 1).collect::<String>();
    if !is_label_key(key) {
        return Err(FieldError::invalid(
            LABELS,
            &shown(key),
            format!(
                "a label key is a name of letters, digits, '-', '_' or '.' (starting and ending with a letter \
                 or digit, at most {LABEL_VALUE_MAX}), optionally behind a dns subdomain prefix and '/'"
            ),
        ));
    }
    if is_label_value(value) {
        return Ok(());
    }
    Err(FieldError::invalid(
        LABELS,
        &shown(value),
        format!(
            "the value of label {key:?} must be empty, or letters, digits, '-', '_' or '.' starting and ending \
             with a letter or digit, at most {LABEL_VALUE_MAX} characters"
        ),
    ))
}

/// What is wrong with an object's labels, each label at most once.
pub(crate) fn labels(labels: &BTreeMap<String, String>) -> Vec<FieldError> {
    labels.iter().filter_map(|(key, value)| label(key, value).err()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_rfc_1123_subdomains() {
        for good in ["a", "a.b", "web-1", "0", "a-b.c-d.e", &"a".repeat(63), &format!("{}.b", "a".repeat(63))]
        {
            assert!(object_name("name", good).is_ok(), "{good}");
        }
        let too_long = format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(63));
        for bad in ["", "a..b", ".a", "a.", "-a", "a-", "A", "a_b", "a/b", "a b", &"a".repeat(64), &too_long]
        {
            let error = object_name("metadata.name", bad).expect_err(bad);
            assert_eq!(error.field, "metadata.name", "{bad}");
        }
    }

    #[test]
    fn namespaces_are_rfc_1123_labels() {
        assert!(namespace_name("kube-system").is_ok());
        assert!(namespace_name(&"n".repeat(63)).is_ok());
        for bad in [&"n".repeat(64), "a.b", "", "Default", "-n"] {
            assert!(namespace_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels_are_checked_key_and_value() {
        for (key, value) in [
            ("app", "web"),
            ("app.kubernetes.io/name", "Web_1.x"),
            ("a", ""),
            ("k", &"v".repeat(63)),
            ("example.com/A-b_c.d", "x"),
        ] {
            assert!(label(key, value).is_ok(), "{key}={value}");
        }
        for (key, value) in [
            ("with space", "x"),
            ("", "x"),
            ("/name", "x"),
            ("prefix/", "x"),
            ("Bad_Prefix/name", "x"),
            ("a/b/c", "x"),
            ("-app", "x"),
            ("app", "-x"),
            ("app", "x y"),
            ("app", &"v".repeat(64)),
            ("app", &"v".repeat(100 * 1024)),
        ] {
            assert!(label(key, value).is_err(), "{key}={value}");
        }
    }

    #[test]
    fn a_long_bad_value_is_not_repeated_whole_in_the_message() {
        let error = label("app", &"v".repeat(100 * 1024)).unwrap_err();
        assert!(error.to_string().len() < 1024, "{}", error.to_string().len());
        let key = "k".repeat(100 * 1024);
        assert!(label(&key, "v").unwrap_err().to_string().len() < 1024);
    }
}
