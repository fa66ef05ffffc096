//! Kubernetes object names as the API server validates them. A name read from a load
//! balancer's tags ends up in `kubectl` commands, and tags are written by anyone with a
//! tagging permission: only a name the API server could hold is taken for one.
//!
//! Not for: quoting (see `shell`), which keeps a value one word but cannot change its meaning.

/// An RFC 1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters): a namespace.
pub fn is_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// An RFC 1035 label: an RFC 1123 label that starts with a letter. Service names are these.
pub fn is_dns1035_label(value: &str) -> bool {
    is_label(value) && value.as_bytes()[0].is_ascii_lowercase()
}

/// An RFC 1123 subdomain: labels joined by dots, at most 253 characters. Ingress names are
/// these.
pub fn is_subdomain(value: &str) -> bool {
    value.len() <= 253 && value.split('.').all(is_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_api_server_accepts_and_refuses() {
        for good in ["shop", "a", "shop-prod", "0abc", &"a".repeat(63)] {
            assert!(is_label(good), "{good}");
        }
        for bad in [
            "",
            "-shop",
            "shop-",
            "Shop",
            "shop_prod",
            "shop.prod",
            "--server=https://evil.example",
            "shop prod",
            "é",
            &"a".repeat(64),
        ] {
            assert!(!is_label(bad), "{bad:?}");
        }
        assert!(is_subdomain("checkout.v2"));
        assert!(!is_subdomain("checkout..v2"));
        assert!(!is_subdomain(".checkout"));
        assert!(!is_subdomain("-checkout"));
        assert!(
            !is_subdomain(&vec!["a".repeat(63); 4].join(".")),
            "255 characters"
        );
        assert!(is_subdomain(
            &[
                "a".repeat(62),
                "a".repeat(63),
                "a".repeat(63),
                "a".repeat(61)
            ]
            .join(".")
        ));
        assert!(is_dns1035_label("web"));
        assert!(!is_dns1035_label("1web"));
    }
}
