//! Names: DNS name syntax for subject alternative names, and Lemur's certificate names.

use time::OffsetDateTime;

/// Whether `name` is a DNS name a CA may certify: LDH labels of 1 to 63 characters, 253 in all,
/// a wildcard only as the whole leftmost label, at least two labels, and a last label that is not
/// all digits (`10.0.0.1` is an IP address, which belongs in an IP SAN).
pub fn valid_dns_name(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    if name.len() > 253
        || labels.len() < 2
        || labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    labels.iter().enumerate().all(|(index, label)| {
        (index == 0 && *label == "*")
            || (!label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    })
}

/// Whether `name` (a wildcard standing for its base) is `domain` or a name under it.
pub fn within(name: &str, domain: &str) -> bool {
    let name = name.trim_start_matches("*.");
    name == domain
        || name
            .strip_suffix(domain)
            .is_some_and(|head| head.ends_with('.'))
}

/// Lemur's certificate name: `[SAN-]{cn}-{issuer}-{notBefore:YYYYMMDD}-{notAfter:YYYYMMDD}`, with
/// `*` spelled `WILDCARD` and anything but letters, digits, `.` and `-` turned into `-`.
pub fn certificate_name(
    cn: &str,
    issuer: &str,
    not_before: i64,
    not_after: i64,
    san_count: usize,
) -> String {
    let date = |unix: i64| {
        OffsetDateTime::from_unix_timestamp(unix)
            .map(|t| format!("{:04}{:02}{:02}", t.year(), u8::from(t.month()), t.day()))
            .unwrap_or_default()
    };
    let cn = if cn.is_empty() { "no-common-name" } else { cn };
    let raw = format!(
        "{}{}-{}-{}-{}",
        if san_count > 1 { "SAN-" } else { "" },
        cn.replace('*', "WILDCARD"),
        issuer,
        date(not_before),
        date(not_after)
    );
    let mut slug = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
            c
        } else {
            '-'
        };
        if !(c == '-' && slug.ends_with('-')) {
            slug.push(c);
        }
    }
    slug.trim_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_a_domain() {
        assert!(within("example.com", "example.com"));
        assert!(within("www.example.com", "example.com"));
        assert!(within("*.example.com", "example.com"));
        assert!(!within("badexample.com", "example.com"));
        assert!(!within("example.com.evil.net", "example.com"));
    }

    #[test]
    fn dns_names() {
        for good in [
            "example.com",
            "a-b.example.com",
            "*.example.com",
            "xn--bcher-kva.example",
        ] {
            assert!(valid_dns_name(good), "{good}");
        }
        for bad in [
            "localhost",
            "a..b",
            "-a.example.com",
            "a_b.example.com",
            "www.*.example.com",
            "*",
            "a.example.com.",
            &format!("{}.com", "a".repeat(64)),
        ] {
            assert!(!valid_dns_name(bad), "{bad}");
        }
    }

    #[test]
    fn lemur_style_names() {
        assert_eq!(
            certificate_name(
                "*.example.com",
                "LemurTestCA",
                1_767_225_600,
                1_798_761_600,
                2
            ),
            "SAN-WILDCARD.example.com-LemurTestCA-20260101-20270101"
        );
        assert_eq!(
            certificate_name("a b", "CA", 0, 0, 1),
            "a-b-CA-19700101-19700101"
        );
    }
}
