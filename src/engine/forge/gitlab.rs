//! GitLab merge requests: `/projects/{url-encoded path}/merge_requests`.

use reqwest::Method;
use serde_json::{Value, json};

use super::{
    Client, CommitStatus, Forge, ForgeError, NewPullRequest, PrState, PullRequest, encode, str_at,
};

pub(crate) struct Gitlab {
    client: Client,
    /// `/projects/{group%2Fsub%2Frepo}`
    project: String,
}

impl Gitlab {
    pub(crate) fn new(client: Client, path: String) -> Self {
        Self {
            client: client.speaking("Bearer", &[]),
            project: format!("/projects/{}", encode(&path)),
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
        let path = format!("{}{path}", self.project);
        self.client.call(method, &path, query, body, what).await
    }

    fn parse(&self, v: &Value, what: &str) -> Result<PullRequest, ForgeError> {
        parse(v).ok_or_else(|| self.client.invalid(what))
    }
}

/// A merge request: `iid`, `web_url`, `state` opened|merged|closed|locked.
fn parse(v: &Value) -> Option<PullRequest> {
    let state = match v.get("state")?.as_str()? {
        "merged" => PrState::Merged,
        "opened" | "locked" => PrState::Open,
        _ => PrState::Closed,
    };
    let head_sha = str_at(v, &["sha"]).unwrap_or_default().to_string();
    let merge_sha = match state {
        PrState::Merged => ["merge_commit_sha", "squash_commit_sha"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()))
            .unwrap_or(&head_sha)
            .to_string(),
        _ => String::new(),
    };
    Some(PullRequest {
        number: v.get("iid")?.as_i64()?,
        url: str_at(v, &["web_url"]).unwrap_or_default().to_string(),
        state,
        head_branch: str_at(v, &["source_branch"])
            .unwrap_or_default()
            .to_string(),
        base_branch: str_at(v, &["target_branch"])
            .unwrap_or_default()
            .to_string(),
        head_sha,
        merge_sha,
    })
}

#[async_trait::async_trait]
impl Forge for Gitlab {
    async fn find(&self, head: &str, base: &str) -> Result<Vec<PullRequest>, ForgeError> {
        let what = "listing merge requests";
        let v = self
            .call(
                Method::GET,
                "/merge_requests",
                &[
                    ("source_branch", head),
                    ("target_branch", base),
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
            .filter_map(parse)
            .filter(|p| p.head_branch == head && p.base_branch == base)
            .collect();
        found.sort_by_key(|p| std::cmp::Reverse(p.number));
        Ok(found)
    }

    async fn create(&self, pr: &NewPullRequest<'_>) -> Result<PullRequest, ForgeError> {
        let what = "opening a merge request";
        let body = json!({
            "source_branch": pr.head,
            "target_branch": pr.base,
            "title": pr.title,
            "description": pr.body,
        });
        let v = self
            .call(Method::POST, "/merge_requests", &[], Some(&body), what)
            .await?;
        self.parse(&v, what)
    }

    async fn get(&self, number: i64) -> Result<PullRequest, ForgeError> {
        let what = format!("reading merge request !{number}");
        let v = self
            .call(
                Method::GET,
                &format!("/merge_requests/{number}"),
                &[],
                None,
                &what,
            )
            .await?;
        self.parse(&v, &what)
    }

    async fn comment(&self, number: i64, body: &str) -> Result<(), ForgeError> {
        let what = format!("commenting on merge request !{number}");
        self.call(
            Method::POST,
            &format!("/merge_requests/{number}/notes"),
            &[],
            Some(&json!({ "body": body })),
            &what,
        )
        .await
        .map(|_| ())
    }

    async fn commit_status(&self, sha: &str, status: &CommitStatus<'_>) -> Result<(), ForgeError> {
        let what = format!("setting a commit status on {sha}");
        let mut body = json!({
            "state": status.state.gitlab(),
            "description": super::short_description(status),
            "name": status.context,
        });
        if !status.target_url.is_empty() {
            body["target_url"] = status.target_url.into();
        }
        self.call(
            Method::POST,
            &format!("/statuses/{}", encode(sha)),
            &[],
            Some(&body),
            &what,
        )
        .await
        .map(|_| ())
    }
}
