//! Gitea and Forgejo (and Codeberg): `/api/v1/repos/{owner}/{repo}/pulls`.

use reqwest::Method;
use serde_json::{Value, json};

use super::{
    Client, CommitStatus, Forge, ForgeError, NewPullRequest, PrState, PullRequest, encode, str_at,
};

/// How many pull requests one listing reads (Gitea's page limit).
const PAGE: &str = "50";

pub(crate) struct Gitea {
    client: Client,
    /// `/repos/{owner}/{repo}`
    repo: String,
}

impl Gitea {
    pub(crate) fn new(client: Client, owner: String, name: String) -> Self {
        Self {
            client: client.speaking("token", &[]),
            repo: format!("/repos/{}/{}", encode(&owner), encode(&name)),
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

/// A Gitea pull request (GitHub's shape, which Gitea follows).
pub(super) fn parse(v: &Value) -> Option<PullRequest> {
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
impl Forge for Gitea {
    async fn find(&self, head: &str, base: &str) -> Result<Vec<PullRequest>, ForgeError> {
        let what = "listing pull requests";
        // Gitea filters by state only: the head and base are matched here.
        let v = self
            .call(
                Method::GET,
                "/pulls",
                &[("state", "all"), ("sort", "recentupdate"), ("limit", PAGE)],
                None,
                what,
            )
            .await?;
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
        let body = json!({"head": pr.head, "base": pr.base, "title": pr.title, "body": pr.body});
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
