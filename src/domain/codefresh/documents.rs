//! A file of several Codefresh documents (`---` between them), as users
//! keep them in Git: which kind each one is, and the order they must be
//! applied in.
//!
//! The split is done on the text, at lines that are a document marker
//! (`---`, optionally followed by a comment or content, or `...`), so each
//! document is sent to the server exactly as written and errors point into
//! it. A line starting with `---` is a marker in YAML wherever it appears
//! outside a quoted scalar, so this matches what a YAML reader sees for
//! the documents people write.

use serde_json::Value;

use super::{MAX_YAML_LEN, parse};

/// The kinds a multi-document file may hold, in the order they are applied:
/// templates before the products that refer to them, flows before the
/// products that trigger them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    PromotionTemplate,
    PromotionFlow,
    Product,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PromotionTemplate => super::template::KIND,
            Self::PromotionFlow => super::flow::KIND,
            Self::Product => super::product::KIND,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::PromotionTemplate, Self::PromotionFlow, Self::Product]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One document of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Its position in the file, from 1.
    pub index: usize,
    /// The line it starts on, from 1.
    pub line: usize,
    pub kind: Kind,
    /// `metadata.name`, when it has one (for messages).
    pub name: String,
    /// Its text, as written.
    pub text: String,
}

impl Document {
    /// How messages name it: `document 2 (Product shop, line 14)`.
    pub fn label(&self) -> String {
        let name = if self.name.is_empty() {
            String::new()
        } else {
            format!(" {}", self.name)
        };
        format!(
            "document {} ({}{name}, line {})",
            self.index,
            self.kind.as_str(),
            self.line
        )
    }
}

/// Splits `text` into its documents (empty ones, such as before a leading
/// `---`, are skipped) and sorts them stably into apply order ([`Kind`]).
/// A document that is not YAML, or whose `kind` is missing or not one of
/// the three, is an error naming it; nothing is returned then.
pub fn split(text: &str) -> Result<Vec<Document>, String> {
    let mut pieces: Vec<(usize, String)> = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let marker =
            bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t") || bare == "...";
        if marker {
            pieces.push((start, std::mem::take(&mut current)));
            start = i + 2;
            // Content after `--- ` on the marker line belongs to the next
            // document (`--- {kind: ...}` is rare but valid).
            if let Some(rest) = bare.strip_prefix("---")
                && !rest.trim().is_empty()
                && !rest.trim_start().starts_with('#')
            {
                current.push_str(rest.trim_start());
                current.push('\n');
                start = i + 1;
            }
        } else {
            current.push_str(line);
        }
    }
    pieces.push((start, current));
    let mut documents = Vec::new();
    for (line, text) in pieces {
        if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            continue;
        }
        let index = documents.len() + 1;
        // Only the kind and name are read here, on the client, which does
        // not know the server's step limit: the budget is 64 times the
        // default one, and the server applies its own limits on import.
        let value = parse(&text, MAX_YAML_LEN.saturating_mul(64), 64).map_err(|e| {
            let why = e.first().map(|x| x.description.as_str()).unwrap_or("");
            format!("document {index} (line {line}): {why}")
        })?;
        let kind_text = value.get("kind").and_then(Value::as_str).unwrap_or("");
        let kind = Kind::parse(kind_text).ok_or_else(|| {
            format!(
                "document {index} (line {line}): kind {kind_text:?} is not one of PromotionTemplate, PromotionFlow, Product"
            )
        })?;
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        documents.push(Document {
            index,
            line,
            kind,
            name,
            text,
        });
    }
    if documents.is_empty() {
        return Err("the file holds no YAML document".to_owned());
    }
    documents.sort_by_key(|d| d.kind);
    Ok(documents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_orders_a_mixed_file() {
        let text = "\
# products and what they need
---
apiVersion: codefresh.io/v1beta2
kind: Product
metadata:
  name: shop
spec: {}
---
kind: PromotionFlow
metadata: {name: to-prod}
--- # a template
kind: PromotionTemplate
metadata:
  name: base
...
";
        let docs = split(text).expect("split");
        let got: Vec<(usize, usize, Kind, &str)> = docs
            .iter()
            .map(|d| (d.index, d.line, d.kind, d.name.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (3, 12, Kind::PromotionTemplate, "base"),
                (2, 9, Kind::PromotionFlow, "to-prod"),
                (1, 3, Kind::Product, "shop"),
            ]
        );
        assert!(
            docs[2]
                .text
                .starts_with("apiVersion: codefresh.io/v1beta2\n")
        );
        assert_eq!(
            docs[0].label(),
            "document 3 (PromotionTemplate base, line 12)"
        );
    }

    #[test]
    fn unknown_kinds_and_bad_yaml_name_the_document() {
        let e = split("kind: PromotionFlow\n---\nkind: Secret\n").expect_err("kind");
        assert!(e.starts_with("document 2 (line 3): kind \"Secret\""), "{e}");
        let e = split("kind: Product\n---\na: [\n").expect_err("yaml");
        assert!(
            e.starts_with("document 2 (line 3): not a valid YAML"),
            "{e}"
        );
        assert!(split("# nothing\n---\n").is_err());
    }
}
