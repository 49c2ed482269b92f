//! Git webhook deliveries from GitHub, Gitea/Forgejo and GitLab: checking
//! their signature and reading what promoflow needs from their JSON.
//! Pure: the HTTP handler (`api::webhooks`) does the I/O.
//!
//! HMAC comes from `ring`, already in the dependency tree as rustls' crypto
//! provider: one crypto library, no second TLS or hash stack.

use ring::hmac;
use serde_json::Value;

/// The forge a delivery claims to come from (its URL path says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    GitHub,
    Gitea,
    GitLab,
}

impl Forge {
    pub fn name(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::Gitea => "gitea",
            Forge::GitLab => "gitlab",
        }
    }

    /// The header naming the event.
    pub fn event_header(self) -> &'static str {
        match self {
            Forge::GitHub => "x-github-event",
            Forge::Gitea => "x-gitea-event",
            Forge::GitLab => "x-gitlab-event",
        }
    }

    /// The header carrying the signature (GitLab: the secret token itself).
    pub fn signature_header(self) -> &'static str {
        match self {
            Forge::GitHub => "x-hub-signature-256",
            Forge::Gitea => "x-gitea-signature",
            Forge::GitLab => "x-gitlab-token",
        }
    }
}

/// Why a delivery's signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("the {0} header does not match the body and the configured secret")]
    Mismatch(&'static str),
}

/// Checks a delivery's signature header (`None`: absent) against `body`
/// and `secret`, in constant time:
/// - GitHub `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`;
/// - Gitea `X-Gitea-Signature: <hex HMAC-SHA256 of the body>`;
/// - GitLab `X-Gitlab-Token: <the secret>`.
pub fn verify(
    forge: Forge,
    secret: &[u8],
    header: Option<&[u8]>,
    body: &[u8],
) -> Result<(), SignatureError> {
    let name = forge.signature_header();
    let header = header
        .filter(|h| !h.is_empty())
        .ok_or(SignatureError::Missing(name))?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let ok = match forge {
        Forge::GitHub => header
            .strip_prefix(b"sha256=")
            .and_then(decode_hex)
            .is_some_and(|tag| hmac::verify(&key, body, &tag).is_ok()),
        Forge::Gitea => {
            decode_hex(header).is_some_and(|tag| hmac::verify(&key, body, &tag).is_ok())
        }
        // Comparing the MACs of both tokens is constant time and does not
        // leak the secret's length, which a byte comparison would.
        Forge::GitLab => {
            let expected = hmac::sign(&key, secret);
            hmac::verify(&key, header, expected.as_ref()).is_ok()
        }
    };
    if ok {
        Ok(())
    } else {
        Err(SignatureError::Mismatch(name))
    }
}

/// The hex signature in `s`, or `None` when it is not hex.
fn decode_hex(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// What a delivery asks promoflow to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Commits were pushed to `branch` of the repository reachable at any of
    /// `repo_urls` (the clone URL and the web URL the forge sends).
    Push {
        repo_urls: Vec<String>,
        branch: String,
    },
    /// Pull (merge) request `number` of the repository changed.
    PullRequest { repo_urls: Vec<String>, number: i64 },
    /// Nothing to do (a ping, a tag push, another event); why.
    Ignored(String),
}

/// Why a delivery cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the {0} header is missing")]
    NoEvent(&'static str),
    #[error("the body is not JSON: {0}")]
    Json(String),
    #[error("the {event} payload has no {field}")]
    Field { event: String, field: &'static str },
}

/// Reads a delivery whose event header said `event`.
pub fn parse(forge: Forge, event: Option<&str>, body: &[u8]) -> Result<Delivery, ParseError> {
    let event = event
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .ok_or(ParseError::NoEvent(forge.event_header()))?;
    let kind = match (forge, event) {
        (Forge::GitHub | Forge::Gitea, "push") | (Forge::GitLab, "Push Hook") => Kind::Push,
        (Forge::GitHub | Forge::Gitea, "pull_request") | (Forge::GitLab, "Merge Request Hook") => {
            Kind::PullRequest
        }
        _ => {
            // Still JSON, or the forge is misconfigured: say so.
            serde_json::from_slice::<Value>(body).map_err(|e| ParseError::Json(e.to_string()))?;
            return Ok(Delivery::Ignored(format!("{event} events start nothing")));
        }
    };
    let v: Value = serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    let missing = |field| ParseError::Field {
        event: event.to_string(),
        field,
    };
    let repo = match forge {
        Forge::GitHub | Forge::Gitea => &v["repository"],
        Forge::GitLab => &v["project"],
    };
    let url_fields: &[&str] = match forge {
        Forge::GitHub | Forge::Gitea => &["clone_url", "html_url"],
        Forge::GitLab => &["git_http_url", "web_url"],
    };
    let repo_urls: Vec<String> = url_fields
        .iter()
        .filter_map(|f| repo[*f].as_str())
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect();
    if repo_urls.is_empty() {
        return Err(missing(match forge {
            Forge::GitLab => "project.git_http_url",
            _ => "repository.clone_url",
        }));
    }
    match kind {
        Kind::Push => {
            let r = v["ref"].as_str().ok_or_else(|| missing("ref"))?;
            let Some(branch) = r.strip_prefix("refs/heads/").filter(|b| !b.is_empty()) else {
                return Ok(Delivery::Ignored(format!("{r} is not a branch")));
            };
            let after = v["after"].as_str().unwrap_or("");
            if v["deleted"].as_bool() == Some(true)
                || (!after.is_empty() && after.bytes().all(|b| b == b'0'))
            {
                return Ok(Delivery::Ignored(format!("branch {branch} was deleted")));
            }
            Ok(Delivery::Push {
                repo_urls,
                branch: branch.to_string(),
            })
        }
        Kind::PullRequest => {
            let number = match forge {
                Forge::GitHub | Forge::Gitea => v["number"]
                    .as_i64()
                    .or_else(|| v["pull_request"]["number"].as_i64())
                    .ok_or_else(|| missing("number"))?,
                Forge::GitLab => v["object_attributes"]["iid"]
                    .as_i64()
                    .ok_or_else(|| missing("object_attributes.iid"))?,
            };
            Ok(Delivery::PullRequest { repo_urls, number })
        }
    }
}

enum Kind {
    Push,
    PullRequest,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        hmac::sign(&key, body)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn signatures_per_forge() {
        let body = br#"{"x":1}"#;
        let hex = sign(b"s3cret", body);
        let github = format!("sha256={hex}");
        assert_eq!(
            verify(Forge::GitHub, b"s3cret", Some(github.as_bytes()), body),
            Ok(())
        );
        assert_eq!(
            verify(
                Forge::Gitea,
                b"s3cret",
                Some(hex.to_uppercase().as_bytes()),
                body
            ),
            Ok(())
        );
        assert_eq!(
            verify(Forge::GitLab, b"s3cret", Some(b"s3cret"), body),
            Ok(())
        );
        // Wrong secret, wrong body, wrong shape, absent.
        let mismatch = |f: Forge| Err(SignatureError::Mismatch(f.signature_header()));
        assert_eq!(
            verify(Forge::GitHub, b"other", Some(github.as_bytes()), body),
            mismatch(Forge::GitHub)
        );
        assert_eq!(
            verify(Forge::GitHub, b"s3cret", Some(github.as_bytes()), b"{}"),
            mismatch(Forge::GitHub)
        );
        assert_eq!(
            verify(Forge::GitHub, b"s3cret", Some(hex.as_bytes()), body),
            mismatch(Forge::GitHub),
            "GitHub's header needs the sha256= prefix"
        );
        assert_eq!(
            verify(Forge::Gitea, b"s3cret", Some(b"zz"), body),
            mismatch(Forge::Gitea)
        );
        assert_eq!(
            verify(Forge::GitLab, b"s3cret", Some(b"s3cre"), body),
            mismatch(Forge::GitLab)
        );
        assert_eq!(
            verify(Forge::GitLab, b"s3cret", None, body),
            Err(SignatureError::Missing("x-gitlab-token"))
        );
        assert_eq!(
            verify(Forge::Gitea, b"s3cret", Some(b""), body),
            Err(SignatureError::Missing("x-gitea-signature"))
        );
    }

    #[test]
    fn push_and_pull_request_shapes() {
        let push = br#"{"ref":"refs/heads/main","after":"abc","repository":{"clone_url":"https://h/o/r.git","html_url":"https://h/o/r"}}"#;
        let want = Delivery::Push {
            repo_urls: vec!["https://h/o/r.git".into(), "https://h/o/r".into()],
            branch: "main".into(),
        };
        assert_eq!(parse(Forge::GitHub, Some("push"), push), Ok(want.clone()));
        assert_eq!(parse(Forge::Gitea, Some("push"), push), Ok(want));
        let lab = br#"{"object_kind":"push","ref":"refs/heads/rel/1","project":{"git_http_url":"https://gl/o/r.git","web_url":"https://gl/o/r"}}"#;
        assert_eq!(
            parse(Forge::GitLab, Some("Push Hook"), lab),
            Ok(Delivery::Push {
                repo_urls: vec!["https://gl/o/r.git".into(), "https://gl/o/r".into()],
                branch: "rel/1".into()
            })
        );
        let pr =
            br#"{"action":"closed","number":7,"repository":{"clone_url":"https://h/o/r.git"}}"#;
        assert_eq!(
            parse(Forge::GitHub, Some("pull_request"), pr),
            Ok(Delivery::PullRequest {
                repo_urls: vec!["https://h/o/r.git".into()],
                number: 7
            })
        );
        let mr = br#"{"object_attributes":{"iid":3,"id":99},"project":{"git_http_url":"https://gl/o/r.git"}}"#;
        assert_eq!(
            parse(Forge::GitLab, Some("Merge Request Hook"), mr),
            Ok(Delivery::PullRequest {
                repo_urls: vec!["https://gl/o/r.git".into()],
                number: 3
            })
        );
    }

    #[test]
    fn what_is_ignored_and_what_is_malformed() {
        let tag = br#"{"ref":"refs/tags/v1","repository":{"clone_url":"https://h/o/r.git"}}"#;
        assert!(matches!(
            parse(Forge::GitHub, Some("push"), tag),
            Ok(Delivery::Ignored(_))
        ));
        let deleted = br#"{"ref":"refs/heads/x","deleted":true,"repository":{"clone_url":"https://h/o/r.git"}}"#;
        assert!(matches!(
            parse(Forge::GitHub, Some("push"), deleted),
            Ok(Delivery::Ignored(_))
        ));
        assert!(matches!(
            parse(Forge::GitHub, Some("ping"), br#"{"zen":"hi"}"#),
            Ok(Delivery::Ignored(_))
        ));
        // GitLab names its events differently: "push" is not one.
        assert!(matches!(
            parse(Forge::GitLab, Some("push"), br#"{}"#),
            Ok(Delivery::Ignored(_))
        ));
        assert!(matches!(
            parse(Forge::GitHub, Some("push"), b"{not json"),
            Err(ParseError::Json(_))
        ));
        assert!(matches!(
            parse(Forge::GitHub, Some("ping"), b"nope"),
            Err(ParseError::Json(_))
        ));
        assert_eq!(
            parse(Forge::GitHub, None, b"{}"),
            Err(ParseError::NoEvent("x-github-event"))
        );
        assert!(matches!(
            parse(Forge::GitHub, Some("push"), br#"{"ref":"refs/heads/main"}"#),
            Err(ParseError::Field { .. })
        ));
        assert!(matches!(
            parse(
                Forge::GitHub,
                Some("pull_request"),
                br#"{"repository":{"clone_url":"https://h/o/r.git"}}"#
            ),
            Err(ParseError::Field { .. })
        ));
    }
}
