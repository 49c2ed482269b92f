//! GitHub and GitHub Enterprise, REST v3: `/repos/{owner}/{repo}/pulls`.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Client, CommitStatus, Forge, ForgeError, NewPullRequest, PullRequest, encode};

/// The media type and REST API version promoflow speaks.
const HEADERS: &[(&str, &str)] = &[
    ("accept", "application/vnd.github+json"),
    ("x-github-api-version", "2022-11-28"),
];

pub(crate) struct Github {
    client: Client,
    owner: String,
    /// `/repos/{owner}/{repo}`
    repo: String,
}

impl Github {
    pub(crate) fn new(client: Client, owner: String, name: String) -> Self {
        Self {
            client: client.speaking("Bearer", HEADERS),
            repo: format!("/repos/{}/{}", encode(&owner), encode(&name)),
            owner,
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
        // GitHub's pull requests are what Gitea copied.
        super::gitea::parse(v).ok_or_else(|| self.client.invalid(what))
    }
}

#[async_trait::async_trait]
impl Forge for Github {
    async fn find(&self, head: &str, base: &str) -> Result<Vec<PullRequest>, ForgeError> {
        let what = "listing pull requests";
        let head_filter = format!("{}:{head}", self.owner);
        let v = self
            .call(
                Method::GET,
                "/pulls",
                &[
                    ("head", head_filter.as_str()),
                    ("base", base),
                    ("state", "all"),
                    ("per_page", "50"),
                ],
                None,
                what,
            )
            .await?;
        let list = v.as_array().ok_or_else(|| self.client.invalid(what))?;
        let mut found: Vec<PullRequest> = list
            .iter()
            .filter_map(super::gitea::parse)
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
