//! Repository URLs: which ones promoflow accepts, and the normalized form
//! that names a repository's cache directory and locks.

/// How a repository is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transport {
    Https,
    Http,
    /// A path on this machine (absolute, or `file://`).
    Local,
}

/// A repository URL that passed [`parse`].
#[derive(Debug, Clone)]
pub(super) struct RepoUrl {
    /// As given: what git is handed.
    pub raw: String,
    pub transport: Transport,
    /// Lower-case scheme and host, no trailing `/` or `.git`: two spellings
    /// of one repository share a cache and a lock.
    pub normalized: String,
    /// `host[:port]` for messages ("authentication failed for …"); the
    /// path for local repositories.
    pub host: String,
}

/// Checks `raw` as a repository URL; the error says what to write instead.
pub(super) fn parse(raw: &str, allow_local: bool) -> Result<RepoUrl, String> {
    if raw.is_empty() {
        return Err("the repository URL is empty".into());
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "the repository URL {raw:?} contains spaces or control characters"
        ));
    }
    let local_refused = || {
        format!(
            "the repository {raw:?} is a local path; local repositories are refused unless the server runs with --allow-local-git"
        )
    };
    if raw.starts_with('/') {
        if !allow_local {
            return Err(local_refused());
        }
        return Ok(local(raw, raw));
    }
    let lower = raw.to_ascii_lowercase();
    if lower.starts_with("file:") {
        if !allow_local {
            return Err(local_refused());
        }
        let path = raw["file://".len().min(raw.len())..].to_string();
        if !lower.starts_with("file:///") {
            return Err(format!(
                "the repository URL {raw:?} must be file:///absolute/path (no host)"
            ));
        }
        return Ok(local(raw, &path));
    }
    if !lower.contains("://") {
        // `git@github.com:owner/repo.git`, scp-like SSH.
        if let Some((before, _)) = raw.split_once(':')
            && !before.contains('/')
        {
            return Err(format!(
                "the repository URL {raw:?} is an SSH address, which promoflow does not support; use https://{}/… with a token in --git-credentials",
                before.rsplit('@').next().unwrap_or(before)
            ));
        }
        return Err(format!(
            "the repository URL {raw:?} is not a URL; write https://host/owner/repo.git"
        ));
    }
    let url = url::Url::parse(raw)
        .map_err(|e| format!("the repository URL {raw:?} is not a valid URL: {e}"))?;
    let transport = match url.scheme() {
        "https" => Transport::Https,
        "http" => Transport::Http,
        other => {
            return Err(format!(
                "the repository URL {raw:?} uses {other}://, which promoflow does not support; use https:// (or http:// for a server on a trusted network)"
            ));
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "the repository URL for {} contains a user name or password; remove it and put the credentials in the --git-credentials file",
            url.host_str().unwrap_or("")
        ));
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(format!("the repository URL {raw:?} has no host"));
    };
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "the repository URL {raw:?} has a query or fragment (`?`, `#`); remove it"
        ));
    }
    let path = trim_repo_path(url.path());
    if path.is_empty() {
        return Err(format!(
            "the repository URL {raw:?} names no repository (its path is empty)"
        ));
    }
    let host = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    Ok(RepoUrl {
        raw: raw.to_string(),
        transport,
        normalized: format!("{}://{host}{path}", url.scheme()),
        host,
    })
}

fn local(raw: &str, path: &str) -> RepoUrl {
    RepoUrl {
        raw: raw.to_string(),
        transport: Transport::Local,
        normalized: format!("file://{}", trim_repo_path(path)),
        host: trim_repo_path(path).to_string(),
    }
}

/// A repository path without trailing `/` and `.git`.
pub(super) fn trim_repo_path(path: &str) -> &str {
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    path.trim_end_matches('/')
}

/// A directory name for the cache of `normalized`: readable, and unique
/// through a stable hash (FNV-1a, the same in every build).
pub(super) fn cache_name(normalized: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in normalized.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let readable: String = normalized
        .split_once("://")
        .map_or(normalized, |(_, rest)| rest)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let readable = readable.trim_matches('-');
    let tail: String = readable
        .chars()
        .rev()
        .take(48)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{tail}-{hash:016x}.git")
}

/// Checks a branch name the way `git check-ref-format --branch` would,
/// and refuses anything git could read as an option.
pub(super) fn check_branch(branch: &str) -> Result<(), String> {
    let bad = branch.is_empty()
        || branch.starts_with('-')
        || branch.starts_with('/')
        || branch.ends_with('/')
        || branch.ends_with('.')
        || branch.ends_with(".lock")
        || branch.contains("..")
        || branch.contains("//")
        || branch.contains("@{")
        || branch == "@"
        || branch.split('/').any(|c| c.starts_with('.'))
        || branch.chars().any(|c| {
            c.is_control()
                || c.is_whitespace()
                || matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\')
        });
    if bad {
        Err(format!("{branch:?} is not a valid branch name"))
    } else {
        Ok(())
    }
}

/// Checks a path inside a repository: relative, `/`-separated, without
/// `.`, `..` or `.git` components. `allow_empty`: "" is the root.
pub(super) fn check_repo_path(path: &str, allow_empty: bool) -> Result<String, String> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return if allow_empty {
            Ok(String::new())
        } else {
            Err("the file path is empty".into())
        };
    }
    if path.starts_with('/') {
        return Err(format!(
            "{path:?} must be relative to the repository, not absolute"
        ));
    }
    if path.len() > 4096 {
        return Err("the path is longer than 4096 bytes".into());
    }
    for part in trimmed.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(format!(
                "{path:?} must not contain empty, `.` or `..` components"
            ));
        }
        if part.eq_ignore_ascii_case(".git") {
            return Err(format!("{path:?} must not name a .git directory"));
        }
        if part.chars().any(|c| c == '\0' || c == '\n' || c == '\r') {
            return Err(format!("{path:?} contains a control character"));
        }
    }
    Ok(trimmed.to_string())
}

/// Checks a commit id: hexadecimal (abbreviated or full), nothing git could
/// read as an option or a revision expression.
pub(super) fn check_sha(sha: &str) -> Result<(), String> {
    if (4..=64).contains(&sha.len()) && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(format!("{sha:?} is not a commit id (hexadecimal)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        let a = parse("https://GitHub.com/acme/app.git/", false).unwrap();
        let b = parse("https://github.com/acme/app", false).unwrap();
        assert_eq!(a.normalized, b.normalized);
        assert_eq!(a.normalized, "https://github.com/acme/app");
        assert_eq!(a.host, "github.com");
        let c = parse("http://127.0.0.1:8080/x.git", false).unwrap();
        assert_eq!(c.host, "127.0.0.1:8080");
        assert_eq!(c.transport, Transport::Http);
        assert_ne!(cache_name(&a.normalized), cache_name(&c.normalized));
        assert!(cache_name(&a.normalized).starts_with("github-com-acme-app-"));
    }

    #[test]
    fn branches_and_paths() {
        for ok in ["main", "release/1.2", "feature-x"] {
            check_branch(ok).unwrap();
        }
        for bad in [
            "", "-x", "a..b", "a b", "a:b", "x.lock", "/x", "x/", "@", "a/.b",
        ] {
            assert!(check_branch(bad).is_err(), "{bad}");
        }
        assert_eq!(check_repo_path("/", true).unwrap(), "");
        assert_eq!(check_repo_path("apps/prod/", true).unwrap(), "apps/prod");
        for bad in ["/etc/passwd", "a/../b", "a/./b", ".git/config", "a//b"] {
            assert!(check_repo_path(bad, true).is_err(), "{bad}");
        }
        check_sha("0123abcd").unwrap();
        assert!(check_sha("--upload-pack=x").is_err());
        assert!(check_sha("HEAD~1").is_err());
    }
}
