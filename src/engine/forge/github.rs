//! GitHub and GitHub Enterprise, REST v3: `/repos/{owner}/{repo}/pulls`.
//! Gitea and Forgejo follow the same shape for pull requests, comments and
//! commit statuses; only how they authenticate and how pull requests of a
//! head and base are listed differ (see [`Listing`] and `gitea.rs`).

use reqwest::Method;
use serde_json::{Value, json};

use super::{
    Client, CommitStatus, Forge, ForgeError, NewPullRequest, PrState, PullRequest, encode, str_at,
};

/// The media type and REST API version promoflow speaks.
const HEADERS: &[(&str, &str)] = &[
    ("accept", "application/vnd.github+json"),
    ("x-github-api-version", "2022-11-28"),
];

/// How many pull requests one listing reads (also Gitea's page limit).
const PAGE: &str = "50";

/// How the pull requests from a head into a base are found.
pub(super) enum Listing {
    /// GitHub filters on the server, by `owner:head` and base.
    Github { owner: String },
    /// Gitea filters by state only: the most recently updated page is
    /// read and matched here.
    Gitea,
}

pub(crate) struct Github {
    client: Client,
    /// `/repos/{owner}/{repo}`
    repo: String,
    listing: Listing,
}

impl Github {
    pub(crate) fn new(client: Client, owner: String, name: String) -> Self {
        let client = client.speaking("Bearer", HEADERS);
        Self::with(client, &owner.clone(), &name, Listing::Github { owner })
    }

    /// The API of `owner/name` over `client` (already speaking the forge's
    /// authentication).
    pub(super) fn with(client: Client, owner: &str, name: &str, listing: Listing) -> Self {
        Self {
            client,
            repo: format!("/repos/{}/{}", encode(owner), encode(name)),
            listing,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        what: &str,
    ) -> Result<Value, ForgeError> {
        let path = format!("{}{path}", self.repo);
        self.client.call(method, &path, query, body, what).await
    }

    fn parse(&self, v: &Value, what: &str) -> Result<PullRequest, ForgeError> {
        parse(v).ok_or_else(|| self.client.invalid(what))
    }
}

/// A pull request in GitHub's shape (which Gitea follows).
fn parse(v: &Value) -> Option<PullRequest> {
    let number = v.get("number")?.as_i64()?;
    let merged = v.get("merged").and_then(Value::as_bool).unwrap_or(false)
        || v.get("merged_at").is_some_and(|m| !m.is_null());
    let state = match (v.get("state")?.as_str()?, merged) {
        (_, true) => PrState::Merged,
        ("open", _) => PrState::Open,
        _ => PrState::Closed,
    };
    let head_sha = str_at(v, &["head", "sha"]).unwrap_or_default().to_string();
    let merge_sha = match state {
        PrState::Merged => v
            .get("merge_commit_sha")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or(&head_sha)
            .to_string(),
        _ => String::new(),
    };
    Some(PullRequest {
        number,
        url: str_at(v, &["html_url"]).unwrap_or_default().to_string(),
        state,
        head_branch: str_at(v, &["head", "ref"]).unwrap_or_default().to_string(),
        base_branch: str_at(v, &["base", "ref"]).unwrap_or_default().to_string(),
        head_sha,
        merge_sha,
    })
}

#[async_trait::async_trait]
impl Forge for Github {
    async fn find(&self, head: &str, base: &str) -> Result<Vec<PullRequest>, ForgeError> {
        let what = "listing pull requests";
        let head_filter;
        let query: Vec<(&str, &str)> = match &self.listing {
            Listing::Github { owner } => {
                head_filter = format!("{owner}:{head}");
                vec![
                    ("head", head_filter.as_str()),
                    ("base", base),
                    ("state", "all"),
                    ("per_page", PAGE),
                ]
            }
            Listing::Gitea => vec![("state", "all"), ("sort", "recentupdate"), ("limit", PAGE)],
        };
        let v = self.call(Method::GET, "/pulls", &query, None, what).await?;
        let list = v.as_array().ok_or_else(|| self.client.invalid(what))?;
        let mut found: Vec<PullRequest> = list
            .iter()
            .filter_map(parse)
            .filter(|p| p.head_branch == head && p.base_branch == base)
            .collect();
        found.sort_by_key(|p| std::cmp::Reverse(p.number));
        Ok(found)
    }

    async fn create(&self, pr: &NewPullRequest<'_>) -> Result<PullRequest, ForgeError> {
        let what = "opening a pull request";
        let body = json!({"title": pr.title, "head": pr.head, "base": pr.base, "body": pr.body});
        let v = self
            .call(Method::POST, "/pulls", &[], Some(&body), what)
            .await?;
        self.parse(&v, what)
    }

    async fn get(&self, number: i64) -> Result<PullRequest, ForgeError> {
        let what = format!("reading pull request #{number}");
        let v = self
            .call(Method::GET, &format!("/pulls/{number}"), &[], None, &what)
            .await?;
        self.parse(&v, &what)
    }

    async fn comment(&self, number: i64, body: &str) -> Result<(), ForgeError> {
        let what = format!("commenting on pull request #{number}");
        self.call(
            Method::POST,
            &format!("/issues/{number}/comments"),
            &[],
            Some(&json!({ "body": body })),
            &what,
        )
        .await
        .map(|_| ())
    }

    async fn commit_status(&self, sha: &str, status: &CommitStatus<'_>) -> Result<(), ForgeError> {
        let what = format!("setting a commit status on {sha}");
        self.call(
            Method::POST,
            &format!("/statuses/{}", encode(sha)),
            &[],
            Some(&super::github_status_body(status)),
            &what,
        )
        .await
        .map(|_| ())
    }
}
