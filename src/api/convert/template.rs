//! Named promotion templates and their label selectors.

use super::catalog::{template_in, template_out};
use super::{enum_in, timestamp};
use crate::domain::Violations;
use crate::domain::catalog::Meta;
use crate::domain::template::{LabelOperator, LabelRequirement, LabelSelector, NamedTemplate};
use crate::proto::v1 as pb;

impl From<LabelOperator> for pb::LabelSelectorOperator {
    fn from(o: LabelOperator) -> Self {
        match o {
            LabelOperator::In => Self::In,
            LabelOperator::NotIn => Self::NotIn,
            LabelOperator::Exists => Self::Exists,
            LabelOperator::DoesNotExist => Self::DoesNotExist,
        }
    }
}

pub fn named_template_out(t: NamedTemplate) -> pb::NamedPromotionTemplate {
    pb::NamedPromotionTemplate {
        name: t.name,
        description: t.description,
        template: Some(template_out(t.template)),
        application_source_selector: Some(pb::LabelSelector {
            match_labels: t.selector.match_labels.into_iter().collect(),
            match_expressions: t
                .selector
                .match_expressions
                .into_iter()
                .map(|e| pb::LabelSelectorRequirement {
                    key: e.key,
                    operator: pb::LabelSelectorOperator::from(e.operator) as i32,
                    values: e.values,
                })
                .collect(),
        }),
        priority: t.priority,
        version: t.meta.version,
        create_time: timestamp(t.meta.create_time),
        update_time: timestamp(t.meta.update_time),
    }
}

/// Decodes a named template, collecting decoding violations (unknown or
/// missing operators) in `v`; the handler validates the result.
pub fn named_template_in(v: &mut Violations, t: &pb::NamedPromotionTemplate) -> NamedTemplate {
    let selector =
        t.application_source_selector.as_ref().map(|s| {
            LabelSelector {
        match_labels: s
            .match_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        match_expressions: s
            .match_expressions
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                let field = format!(
                    "promotion_template.application_source_selector.match_expressions[{i}].operator"
                );
                let operator = match enum_in::<pb::LabelSelectorOperator>(v, &field, e.operator)? {
                    pb::LabelSelectorOperator::Unspecified => {
                        v.push(field, "is required");
                        return None;
                    }
                    pb::LabelSelectorOperator::In => LabelOperator::In,
                    pb::LabelSelectorOperator::NotIn => LabelOperator::NotIn,
                    pb::LabelSelectorOperator::Exists => LabelOperator::Exists,
                    pb::LabelSelectorOperator::DoesNotExist => LabelOperator::DoesNotExist,
                };
                Some(LabelRequirement {
                    key: e.key.clone(),
                    operator,
                    values: e.values.clone(),
                })
            })
            .collect(),
    }
        });
    NamedTemplate {
        name: t.name.clone(),
        description: t.description.clone(),
        template: t.template.as_ref().map(template_in).unwrap_or_default(),
        selector: selector.unwrap_or_default(),
        priority: t.priority,
        meta: Meta::default(),
    }
}
