//! Path routing: wsway's `:name` / `*rest` patterns over a private
//! `matchit::Router`.

use std::fmt;

/// A route pattern could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteError {
    path: String,
    reason: String,
}

impl RouteError {
    fn new(path: &str, reason: impl Into<String>) -> Self {
        RouteError {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid route `{}`: {}", self.path, self.reason)
    }
}

impl std::error::Error for RouteError {}

/// Translates `/chat/:room/*rest` into matchit's `/chat/{room}/{*rest}`,
/// checking the pattern as it goes.
pub(crate) fn translate(path: &str) -> Result<String, RouteError> {
    if !path.starts_with('/') {
        return Err(RouteError::new(path, "a route must start with `/`"));
    }
    let mut out = String::with_capacity(path.len() + 8);
    let segments: Vec<&str> = path[1..].split('/').collect();
    let mut names: Vec<&str> = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        out.push('/');
        let (kind, name) = match seg.as_bytes().first() {
            Some(b':') => ("param", &seg[1..]),
            Some(b'*') => ("catch-all", &seg[1..]),
            _ => {
                if seg.contains(['{', '}']) {
                    // matchit reserves braces; escape them so they match literally.
                    out.push_str(&seg.replace('{', "{{").replace('}', "}}"));
                } else {
                    out.push_str(seg);
                }
                continue;
            }
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(RouteError::new(
                path,
                format!("{kind} segment `{seg}` needs a name of letters, digits or `_`"),
            ));
        }
        if names.contains(&name) {
            return Err(RouteError::new(
                path,
                format!("parameter `{name}` appears twice"),
            ));
        }
        names.push(name);
        if kind == "catch-all" {
            if i + 1 != segments.len() {
                return Err(RouteError::new(path, "a `*rest` segment must come last"));
            }
            out.push_str("{*");
        } else {
            out.push('{');
        }
        out.push_str(name);
        out.push('}');
    }
    Ok(out)
}

/// A path router mapping patterns to values of `T`.
pub(crate) struct Router<T> {
    inner: matchit::Router<usize>,
    entries: Vec<(String, T)>,
}

impl<T> Default for Router<T> {
    fn default() -> Self {
        Router {
            inner: matchit::Router::new(),
            entries: Vec::new(),
        }
    }
}

/// Raw (percent-decoded) path parameters of a matched route, in pattern order.
pub(crate) type RawParams = Vec<(String, String)>;

impl<T> Router<T> {
    /// Returns the entry for `path`, inserting `make()` when the pattern is new.
    pub(crate) fn entry(
        &mut self,
        path: &str,
        make: impl FnOnce() -> T,
    ) -> Result<&mut T, RouteError> {
        let pattern = translate(path)?;
        if let Some(i) = self.entries.iter().position(|(p, _)| *p == pattern) {
            return Ok(&mut self.entries[i].1);
        }
        let index = self.entries.len();
        self.inner
            .insert(pattern.clone(), index)
            .map_err(|e| RouteError::new(path, e.to_string()))?;
        self.entries.push((pattern, make()));
        Ok(&mut self.entries[index].1)
    }

    /// The entry for `path`, its pattern, and the parameters it captured.
    pub(crate) fn at(&self, path: &str) -> Option<(&T, &str, RawParams)> {
        let m = self.inner.at(path).ok()?;
        let params = m
            .params
            .iter()
            .map(|(k, v)| (k.to_owned(), decode(v)))
            .collect();
        let (pattern, entry) = &self.entries[*m.value];
        Some((entry, pattern, params))
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().map(|(_, t)| t)
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.entries.iter_mut().map(|(_, t)| t)
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_patterns() {
        assert_eq!(translate("/").unwrap(), "/");
        assert_eq!(translate("/chat/:room").unwrap(), "/chat/{room}");
        assert_eq!(translate("/f/*rest").unwrap(), "/f/{*rest}");
        assert_eq!(translate("/a/:x/b/:y").unwrap(), "/a/{x}/b/{y}");
        assert_eq!(translate("/lit{x}").unwrap(), "/lit{{x}}");
    }

    #[test]
    fn rejects_malformed_patterns() {
        for bad in ["chat", "/a/:", "/a/*", "/a/*rest/b", "/a/:x/:x", "/a/:b-c"] {
            let err = translate(bad).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn matches_and_decodes() {
        let mut r = Router::default();
        *r.entry("/chat/:room", || 0).unwrap() = 1;
        r.entry("/files/*path", || 2).unwrap();
        let (v, _, p) = r.at("/chat/a%20b").unwrap();
        assert_eq!((*v, p), (1, vec![("room".into(), "a b".into())]));
        let (v, _, p) = r.at("/files/x/y.txt").unwrap();
        assert_eq!((*v, p), (2, vec![("path".into(), "x/y.txt".into())]));
        assert!(r.at("/nope").is_none());
        assert!(r.at("/chat/").is_none());
    }

    #[test]
    fn conflicts_are_errors() {
        let mut r = Router::default();
        r.entry("/chat/:room", || 0).unwrap();
        // the same pattern twice is the same entry, not a conflict
        assert!(r.entry("/chat/:room", || 0).is_ok());
        let err = r.entry("/chat/:other", || 0).err().unwrap();
        assert!(err.to_string().contains("/chat/:other"), "{err}");
    }
}
