//! Opaque, stable pagination over name-ordered (or id-ordered) listings.
//!
//! A page token is the URL-safe base64 of the last key returned; the next
//! page starts strictly after it, so inserts and deletes between calls never
//! repeat or skip the rows that remain.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{Error, Result};

pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 500;

/// A validated page request.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub size: u64,
    /// Key to start after.
    pub after: Option<String>,
    /// Which listing the tokens belong to.
    pub scope: String,
}

impl PageRequest {
    /// Validates `page_size` (0 = default, capped at the maximum) and decodes
    /// `page_token`, which must come from a listing of the same `scope`
    /// (e.g. `environments`): a token from another call is refused.
    pub fn parse(scope: &str, page_size: i32, page_token: &str) -> Result<Self> {
        if page_size < 0 {
            return Err(Error::invalid_field("page_size", "must not be negative"));
        }
        let size = match page_size as u64 {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let after = if page_token.is_empty() {
            None
        } else {
            let bytes = URL_SAFE_NO_PAD.decode(page_token).map_err(|_| {
                Error::invalid_field("page_token", "is not a token returned by this server")
            })?;
            let text = String::from_utf8(bytes).map_err(|_| {
                Error::invalid_field("page_token", "is not a token returned by this server")
            })?;
            // The key must be text the database can compare (no NUL): a
            // token this server made always is.
            let key = text
                .strip_prefix(scope)
                .and_then(|rest| rest.strip_prefix('\0'))
                .filter(|key| !key.contains('\0'))
                .ok_or_else(|| {
                    Error::invalid_field(
                        "page_token",
                        format!("is not a token of this {scope} listing; start without one"),
                    )
                })?;
            Some(key.to_string())
        };
        Ok(Self {
            size,
            after,
            scope: scope.to_string(),
        })
    }
}

/// One page of results and the token of the next (empty at the end).
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: String,
}

impl<T> Page<T> {
    /// Builds a page from up to `size + 1` fetched items: the extra one only
    /// tells that another page exists.
    pub fn from_fetched(mut items: Vec<T>, page: &PageRequest, key: impl Fn(&T) -> String) -> Self {
        let size = page.size;
        let more = items.len() as u64 > size;
        items.truncate(size as usize);
        let next_page_token = match (more, items.last()) {
            (true, Some(last)) => URL_SAFE_NO_PAD.encode(format!("{}\0{}", page.scope, key(last))),
            _ => String::new(),
        };
        Self {
            items,
            next_page_token,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_page_token: self.next_page_token,
        }
    }
}
