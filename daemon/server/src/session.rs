//! The web UI's session: its login token in a cookie scripts cannot read (`HttpOnly`), sent
//! only over HTTPS (`Secure`; browsers count `localhost` as secure), only to the API and only
//! by the appliance's own pages (`SameSite=Strict`), so a script injected into a page could use
//! the session while the page is open but not carry the token away.
//!
//! A login asks for it with `X-Requested-With: lemur-web`; other clients keep the bearer token
//! of Lemur's API. A request that changes anything must send the same header when it is
//! signed in by the cookie: another site's form can send neither the header nor (Strict) the
//! cookie, which is two locks against cross-site request forgery.

use axum::http::{HeaderMap, HeaderValue, Method, header};

/// The cookie's name.
const COOKIE: &str = "lemur_session";
/// What the web UI sends in `X-Requested-With`.
const WEB_CLIENT: &str = "lemur-web";

/// Whether the request comes from the web UI (and so wants, or must prove, the cookie session).
pub fn from_web_ui(headers: &HeaderMap) -> bool {
    headers
        .get("x-requested-with")
        .is_some_and(|value| value == WEB_CLIENT)
}

/// The `Set-Cookie` value holding `token` for `lifetime_secs`.
pub fn cookie(token: &str, lifetime_secs: u64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/api/1; Max-Age={lifetime_secs}; HttpOnly; Secure; SameSite=Strict"
    ))
    .ok()
}

/// The `Set-Cookie` value that ends the session in the browser.
pub fn cleared() -> HeaderValue {
    HeaderValue::from_static(
        "lemur_session=; Path=/api/1; Max-Age=0; HttpOnly; Secure; SameSite=Strict",
    )
}

/// The token the session cookie holds, if the request carries one.
pub fn token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

/// Whether a request signed in by the cookie may do what its method does: reads always, changes
/// only from the web UI.
pub fn may_change(method: &Method, headers: &HeaderMap) -> bool {
    matches!(*method, Method::GET | Method::HEAD) || from_web_ui(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others_and_locked_down() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; lemur_session=abc.def; b=2"),
        );
        assert_eq!(token(&headers).as_deref(), Some("abc.def"));
        let set = cookie("abc.def", 3600).unwrap();
        let set = set.to_str().unwrap();
        for attribute in [
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/api/1",
            "Max-Age=3600",
        ] {
            assert!(set.contains(attribute), "{set}");
        }
        assert!(!may_change(&Method::POST, &headers));
        headers.insert("x-requested-with", HeaderValue::from_static("lemur-web"));
        assert!(may_change(&Method::POST, &headers));
    }
}
