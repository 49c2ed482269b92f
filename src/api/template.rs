//! The named promotion template RPCs of `ProductService`, and the YAML
//! import and export of templates and products. The tonic trait impl in
//! `product.rs` delegates here so that each file holds one resource.

use super::convert::catalog::product_out;
use super::convert::template::{named_template_in, named_template_out};
use super::product::check_product;
use super::{
    Ctx, check, check_name_field, expected_version, optional_expected_version, required,
    yaml_violations,
};
use crate::domain::Violations;
use crate::domain::catalog::Product;
use crate::domain::codefresh;
use crate::domain::template::{NamedTemplate, validate_named};
use crate::error::{Error, Result};
use crate::proto::v1 as pb;
use crate::store::PageRequest;

/// How many times an import with `replace` re-reads a resource that another
/// writer changed between its read and its write (last writer wins).
const REPLACE_ATTEMPTS: usize = 5;

/// Validates a decoded template, normalizing its JSONPaths.
fn checked(v: &mut Violations, mut t: NamedTemplate) -> NamedTemplate {
    v.extend(validate_named(
        "promotion_template",
        &mut t,
        &crate::domain::promotion::normalize_json_path,
    ));
    t
}

/// Names the promotion template a write is about in the call's audit row.
fn describe_template(name: &str) {
    crate::store::audit::describe(format!("promotion_template/{name}"), "", "");
}

pub(super) async fn create(
    ctx: &Ctx,
    req: pb::CreatePromotionTemplateRequest,
) -> Result<pb::CreatePromotionTemplateResponse> {
    let mut v = Violations::new();
    let t = named_template_in(
        &mut v,
        required("promotion_template", req.promotion_template.as_ref())?,
    );
    let t = checked(&mut v, t);
    check(v)?;
    describe_template(&t.name);
    let t = ctx.store.create_template(&t).await?;
    Ok(pb::CreatePromotionTemplateResponse {
        promotion_template: Some(named_template_out(t)),
    })
}

pub(super) async fn get(
    ctx: &Ctx,
    req: pb::GetPromotionTemplateRequest,
) -> Result<pb::GetPromotionTemplateResponse> {
    check_name_field("name", &req.name)?;
    let t = ctx.store.get_template(&req.name).await?;
    Ok(pb::GetPromotionTemplateResponse {
        promotion_template: Some(named_template_out(t)),
    })
}

pub(super) async fn list(
    ctx: &Ctx,
    req: pb::ListPromotionTemplatesRequest,
) -> Result<pb::ListPromotionTemplatesResponse> {
    let page = PageRequest::parse("promotion_templates", req.page_size, &req.page_token)?;
    let page = ctx.store.list_templates(&page).await?;
    Ok(pb::ListPromotionTemplatesResponse {
        promotion_templates: page.items.into_iter().map(named_template_out).collect(),
        next_page_token: page.next_page_token,
    })
}

pub(super) async fn update(
    ctx: &Ctx,
    req: pb::UpdatePromotionTemplateRequest,
) -> Result<pb::UpdatePromotionTemplateResponse> {
    let mut v = Violations::new();
    let t = named_template_in(
        &mut v,
        required("promotion_template", req.promotion_template.as_ref())?,
    );
    let t = checked(&mut v, t);
    let expected = expected_version(&mut v, req.expected_version);
    check(v)?;
    describe_template(&t.name);
    let t = ctx.store.update_template(&t, expected).await?;
    Ok(pb::UpdatePromotionTemplateResponse {
        promotion_template: Some(named_template_out(t)),
    })
}

pub(super) async fn delete(
    ctx: &Ctx,
    req: pb::DeletePromotionTemplateRequest,
) -> Result<pb::DeletePromotionTemplateResponse> {
    check_name_field("name", &req.name)?;
    let expected = optional_expected_version(req.expected_version)?;
    describe_template(&req.name);
    ctx.store.delete_template(&req.name, expected).await?;
    Ok(pb::DeletePromotionTemplateResponse {})
}

pub(super) async fn import(
    ctx: &Ctx,
    req: pb::ImportPromotionTemplateRequest,
) -> Result<pb::ImportPromotionTemplateResponse> {
    let t = codefresh::template::from_yaml(&req.yaml).map_err(yaml_violations)?;
    let mut v = Violations::new();
    let t = checked(&mut v, t);
    check(v)?;
    describe_template(&t.name);
    let saved = match ctx.store.create_template(&t).await {
        Err(Error::AlreadyExists(m)) if !req.replace => {
            return Err(Error::AlreadyExists(format!(
                "{m}; set replace to overwrite it with the YAML"
            )));
        }
        Err(Error::AlreadyExists(_)) => {
            replace(|| async {
                let current = ctx.store.get_template(&t.name).await?;
                ctx.store.update_template(&t, current.meta.version).await
            })
            .await?
        }
        other => other?,
    };
    Ok(pb::ImportPromotionTemplateResponse {
        promotion_template: Some(named_template_out(saved)),
    })
}

pub(super) async fn export(
    ctx: &Ctx,
    req: pb::ExportPromotionTemplateRequest,
) -> Result<pb::ExportPromotionTemplateResponse> {
    check_name_field("name", &req.name)?;
    let t = ctx.store.get_template(&req.name).await?;
    Ok(pb::ExportPromotionTemplateResponse {
        yaml: codefresh::template::to_yaml(&t),
    })
}

pub(super) async fn import_product(
    ctx: &Ctx,
    req: pb::ImportProductRequest,
) -> Result<pb::ImportProductResponse> {
    let mut p: Product = codefresh::product::from_yaml(&req.yaml).map_err(yaml_violations)?;
    let mut v = Violations::new();
    check_product(ctx, &mut v, &mut p).await?;
    check(v)?;
    super::product::describe_product(&p.name);
    let saved = match ctx.store.create_product(&p).await {
        Err(Error::AlreadyExists(m)) if !req.replace => {
            return Err(Error::AlreadyExists(format!(
                "{m}; set replace to update it with the YAML"
            )));
        }
        Err(Error::AlreadyExists(_)) => {
            replace(|| async {
                let current = ctx.store.get_product(&p.name).await?;
                ctx.store.update_product(&p, current.meta.version).await
            })
            .await?
        }
        other => other?,
    };
    Ok(pb::ImportProductResponse {
        product: Some(product_out(saved)),
    })
}

pub(super) async fn export_product(
    ctx: &Ctx,
    req: pb::ExportProductRequest,
) -> Result<pb::ExportProductResponse> {
    check_name_field("name", &req.name)?;
    let p = ctx.store.get_product(&req.name).await?;
    Ok(pb::ExportProductResponse {
        yaml: codefresh::product::to_yaml(&p),
    })
}

/// Runs a read-then-write `attempt` until no other writer got in between
/// (`ABORTED`), a few times at most: an import with `replace` is "last
/// writer wins", not a conflict for its caller.
async fn replace<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(Error::Aborted(_)) if tries + 1 < REPLACE_ATTEMPTS => tries += 1,
            other => return other,
        }
    }
}
