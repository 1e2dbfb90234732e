//! Link parsing: the `rel="next"` target of GitHub's `Link` headers, which is how a list pages on.

use reqwest::header::{self, HeaderMap};
use url::Url;

/// The `rel="next"` target of the `Link` headers, resolved against the URL that answered
/// (GitHub's are absolute, and are then kept exactly).
pub(crate) fn next_link(headers: &HeaderMap, request_url: &Url) -> Option<Url> {
    headers
        .get_all(header::LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(next_target)
        .and_then(|target| request_url.join(target).ok())
}

/// The target of the `rel="next"` entry of one `Link` value.
fn next_target(value: &str) -> Option<&str> {
    let mut rest = value;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let end = after.find('>')?;
        let target = &after[..end];
        let tail = &after[end + 1..];
        let params_end = tail.find('<').unwrap_or(tail.len());
        let is_next = tail[..params_end].split(';').any(|param| {
            param.trim().trim_end_matches(',').split_once('=').is_some_and(|(key, value)| {
                key.trim().eq_ignore_ascii_case("rel")
                    && value.trim().trim_matches('"').split_whitespace().any(|rel| rel.eq_ignore_ascii_case("next"))
            })
        });
        if is_next {
            return Some(target);
        }
        rest = &tail[params_end..];
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    pub(crate) fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn follows_the_next_link_exactly() {
        let request = Url::parse("https://api.github.com/repos/o/r/hooks/1/deliveries?per_page=2").unwrap();
        let link = r#"<https://api.github.com/repositories/42/hooks/1/deliveries?per_page=2&cursor=v1_1234%3D>; rel="next", <https://api.github.com/repositories/42/hooks/1/deliveries?per_page=2>; rel="first""#;
        let next = next_link(&headers(&[("link", link)]), &request).unwrap();
        assert_eq!(
            next.as_str(),
            "https://api.github.com/repositories/42/hooks/1/deliveries?per_page=2&cursor=v1_1234%3D"
        );
    }

    #[test]
    fn finds_next_in_any_position_and_header() {
        let request = Url::parse("http://127.0.0.1:1/x").unwrap();
        let first_only = r#"<http://127.0.0.1:1/a>; rel="first""#;
        let last = r#"<http://127.0.0.1:1/b?c=1,2>; rel="prev", <http://127.0.0.1:1/c>;rel=next"#;
        let next = next_link(&headers(&[("link", first_only), ("link", last)]), &request).unwrap();
        assert_eq!(next.as_str(), "http://127.0.0.1:1/c");
        assert_eq!(next_link(&headers(&[("link", first_only)]), &request), None);
        assert_eq!(next_link(&headers(&[]), &request), None);
        assert_eq!(next_link(&headers(&[("link", "garbage <no end")]), &request), None);
    }
}
