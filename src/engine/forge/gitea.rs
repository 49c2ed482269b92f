//! Gitea and Forgejo (and Codeberg): `/api/v1/repos/{owner}/{repo}/pulls`,
//! GitHub's shape with Gitea's `token` authorization and listing (the REST
//! calls are [`super::github::Github`]'s).

use super::Client;
use super::github::{Github, Listing};

pub(crate) fn new(client: Client, owner: String, name: String) -> Github {
    Github::with(client.speaking("token", &[]), &owner, &name, Listing::Gitea)
}
