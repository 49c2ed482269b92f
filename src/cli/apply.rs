//! `apply -f FILE` for every Codefresh kind: one file may hold several
//! documents (`---` between them). They are applied in dependency order,
//! promotion templates, then flows, then products (a product names both),
//! each with its Import RPC and `replace`, and each result is reported on
//! its own line. The first failure stops the run with an error naming the
//! document; the documents before it stay applied (each import is its own
//! transaction), and the message says how many.

use serde_json::Value;

use super::client::{CliError, Ctx, fail};
use super::output::{Output, outln, print_value, to_value};
use crate::domain::codefresh::documents::{self, Document, Kind};
use crate::proto::v1 as pb;

/// Reads `file`, or standard input for `-`.
pub fn read(file: &str) -> Result<String, CliError> {
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(file)
    };
    text.map_err(|e| CliError::Message(format!("cannot read {file}: {e}")))
}

/// What applying one document gave: a line for people, the resource for
/// scripts.
struct Applied {
    line: String,
    value: Value,
}

/// Applies the documents of `file` whose kinds are in `allowed` (a document
/// of another kind is refused before anything is applied, naming the
/// command that takes it).
pub async fn apply(ctx: &Ctx, file: &str, allowed: &[Kind], command: &str) -> Result<(), CliError> {
    let text = read(file)?;
    let docs = documents::split(&text).map_err(|e| CliError::Message(format!("{file}: {e}")))?;
    if let Some(other) = docs.iter().find(|d| !allowed.contains(&d.kind)) {
        return fail(format!(
            "{file}: {} is not applied by `promoflow {command} apply`: use `promoflow flow apply -f {file}`, which takes every kind",
            other.label()
        ));
    }
    let mut applied = Vec::new();
    for doc in &docs {
        match apply_one(ctx, doc).await {
            Ok(a) => {
                if ctx.output == Output::Table {
                    outln!("{}", a.line);
                }
                applied.push(a.value);
            }
            Err(e) => {
                let before = match applied.len() {
                    0 => "nothing was applied".to_owned(),
                    1 => "the document before it was applied".to_owned(),
                    n => format!("the {n} documents before it were applied"),
                };
                return fail(format!("{file}: {} failed ({before}): {e}", doc.label()));
            }
        }
    }
    match (ctx.output, applied.len()) {
        (Output::Table, _) => Ok(()),
        // One document: the resource itself, as `get` prints it.
        (output, 1) => print_value(output, &applied[0]),
        (output, _) => print_value(output, &Value::Array(applied)),
    }
}

async fn apply_one(ctx: &Ctx, doc: &Document) -> Result<Applied, CliError> {
    let yaml = doc.text.clone();
    let verb = |version: i64| if version == 1 { "created" } else { "applied" };
    Ok(match doc.kind {
        Kind::PromotionTemplate => {
            let t = ctx
                .products()
                .import_promotion_template(pb::ImportPromotionTemplateRequest {
                    yaml,
                    replace: true,
                })
                .await?
                .into_inner()
                .promotion_template
                .unwrap_or_default();
            Applied {
                line: format!(
                    "promotion template {} {} (version {})",
                    t.name,
                    verb(t.version),
                    t.version
                ),
                value: to_value(&t)?,
            }
        }
        Kind::PromotionFlow => {
            let f = ctx
                .flows()
                .import_flow(pb::ImportFlowRequest {
                    yaml,
                    replace: true,
                })
                .await?
                .into_inner();
            let unchanged = f.unchanged;
            let f = f.flow.unwrap_or_default();
            Applied {
                line: format!(
                    "flow {} {} (version {})",
                    f.name,
                    if unchanged {
                        "unchanged"
                    } else {
                        verb(f.version)
                    },
                    f.version
                ),
                value: to_value(&f)?,
            }
        }
        Kind::Product => {
            let p = ctx
                .products()
                .import_product(pb::ImportProductRequest {
                    yaml,
                    replace: true,
                })
                .await?
                .into_inner()
                .product
                .unwrap_or_default();
            Applied {
                line: format!(
                    "product {} {} (version {}, {} applications)",
                    p.name,
                    verb(p.version),
                    p.version,
                    p.applications.len()
                ),
                value: to_value(&p)?,
            }
        }
    })
}
