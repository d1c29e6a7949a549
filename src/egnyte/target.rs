//! Where the API is: the base URL from `--domain` or `--api-url`, and webhook ids that are safe
//! in a URL path.

use std::net::IpAddr;

/// Longest webhook id accepted (Egnyte's are 36-character UUIDs).
const MAX_ID_CHARS: usize = 128;

/// `https://acme.egnyte.com` from `acme`, `acme.egnyte.com`, `https://acme.egnyte.com/` (and the
/// government cloud's `acme.egnytegov.com`). Anything else is refused: another host goes in
/// `--api-url`.
pub fn domain_base_url(domain: &str) -> Result<String, String> {
    let given = domain.trim();
    let host = given.strip_prefix("https://").unwrap_or(given).trim_end_matches('/').to_ascii_lowercase();
    let refuse =
        || format!("{given:?} is not an Egnyte domain (acme or acme.egnyte.com; another host: --api-url)");
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let host = match host.split_once('.') {
        None if label_ok(&host) => format!("{host}.egnyte.com"),
        Some((label, cloud)) if label_ok(label) && (cloud == "egnyte.com" || cloud == "egnytegov.com") => {
            host
        }
        _ => return Err(refuse()),
    };
    Ok(format!("https://{host}"))
}

/// The base URL `--api-url` names, without a trailing `/`: `https://` anywhere, `http://` only
/// on a loopback address (tests, a local proxy), no user, query or fragment.
pub fn api_base_url(url: &str) -> Result<String, String> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("{url:?} is not an http(s):// URL"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return Err(format!("{url:?}: only https:// (or http:// on a loopback address)"));
    }
    if rest.contains(['?', '#']) {
        return Err(format!("{url:?}: no query or fragment (the base URL only)"));
    }
    if rest.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("{url:?}: has a space or a control character"));
    }
    let (authority, path) = rest.find('/').map_or((rest, ""), |at| rest.split_at(at));
    if authority.contains('@') {
        return Err("--api-url: no user or password in the URL (the token goes in --api-token-file)".into());
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or_else(|| format!("{url:?}: unclosed '['"))?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if port.is_some_and(|p| p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit())) {
        return Err(format!("{url:?}: the port is not a number"));
    }
    if scheme == "http" && !is_loopback(host) {
        return Err(format!(
            "{url:?}: http:// only for a loopback address (127.0.0.1, [::1], localhost); Egnyte is https://"
        ));
    }
    Ok(format!("{scheme}://{authority}{}", path.trim_end_matches('/')))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A webhook id as it goes into a URL path: 1 to 128 of `A-Z a-z 0-9 . _ ~ -` (nothing that
/// would need escaping, or change the path).
pub fn check_webhook_id(id: &str) -> Result<(), String> {
    let fine = |b: u8| b.is_ascii_alphanumeric() || b"._~-".contains(&b);
    if id.is_empty() || id.len() > MAX_ID_CHARS || !id.bytes().all(fine) || id == "." || id == ".." {
        return Err(format!(
            "{id:?} is not a webhook id (1 to {MAX_ID_CHARS} letters, digits, '.', '_', '~' or '-'; \
             `egnyte-receiver webhook list` shows them)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_becomes_its_https_url() {
        for (domain, url) in [
            ("acme", "https://acme.egnyte.com"),
            ("ACME", "https://acme.egnyte.com"),
            (" acme.egnyte.com ", "https://acme.egnyte.com"),
            ("https://acme.egnyte.com/", "https://acme.egnyte.com"),
            ("acme-2.egnytegov.com", "https://acme-2.egnytegov.com"),
        ] {
            assert_eq!(domain_base_url(domain).as_deref(), Ok(url), "{domain}");
        }
        for bad in [
            "",
            "acme.com",
            "acme.egnyte.com.evil.org",
            "-acme",
            "a b",
            "http://acme.egnyte.com",
            "x.y.egnyte.com",
        ] {
            assert!(domain_base_url(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn api_urls_are_https_or_loopback_http() {
        for (url, base) in [
            ("https://acme.egnyte.com", "https://acme.egnyte.com"),
            ("https://proxy.corp:8443/egnyte/", "https://proxy.corp:8443/egnyte"),
            ("http://127.0.0.1:8081", "http://127.0.0.1:8081"),
            ("HTTP://127.1.2.3:80/", "http://127.1.2.3:80"),
            ("http://[::1]:9000", "http://[::1]:9000"),
            ("http://localhost:9000", "http://localhost:9000"),
        ] {
            assert_eq!(api_base_url(url).as_deref(), Ok(base), "{url}");
        }
        for bad in [
            "http://10.0.0.1:80",
            "http://acme.egnyte.com",
            "http://127.0.0.1.evil.org",
            "ftp://127.0.0.1",
            "acme.egnyte.com",
            "https://user:pw@acme.egnyte.com",
            "https://acme.egnyte.com/?x=1",
            "https://:443",
            "https://acme.egnyte.com:port",
            "https://acme.egnyte.com/a b",
        ] {
            assert!(api_base_url(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn webhook_ids_are_safe_in_a_path() {
        assert!(check_webhook_id("5da697d9-f34e-55ce-a68f-3eece8dc4086").is_ok());
        for bad in ["", "a/b", "..", "a?b", "a b", "é", &"x".repeat(129)] {
            assert!(check_webhook_id(bad).is_err(), "{bad:?}");
        }
    }
}
