//! `ProductService`.

use std::collections::HashSet;

use tonic::{Request, Response, Status};

use super::convert::catalog::{application_out, commit_in, product_in, product_out};
use super::convert::release::release_out;
use super::template;
use super::{Ctx, check, check_name_field, expected_version, optional_expected_version, required};
use crate::domain::Violations;
use crate::domain::catalog;
use crate::error::{Error, Result};
use crate::proto::v1 as pb;
use crate::proto::v1::product_service_server::ProductService;
use crate::store::PageRequest;

pub struct ProductApi {
    ctx: Ctx,
}

impl ProductApi {
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }
}

/// Validates a decoded product, including that every application's
/// environment and every promotion flow exists (looked up in one query
/// each); violations are collected in `v`.
pub(super) async fn check_product(
    ctx: &Ctx,
    v: &mut Violations,
    product: &mut catalog::Product,
) -> Result<()> {
    let wanted: Vec<String> = product
        .applications
        .iter()
        .map(|a| a.environment.clone())
        .filter(|e| crate::domain::is_dns_label(e))
        .collect::<HashSet<_>>()
        .into_iter()
        .take(catalog::MAX_COLLECTION)
        .collect();
    let existing: HashSet<String> = ctx
        .store
        .existing_environments(&wanted)
        .await?
        .into_iter()
        .collect();
    let flows: Vec<String> = product
        .promotion_flows
        .iter()
        .map(|f| f.flow.clone())
        .filter(|f| crate::domain::is_dns_label(f))
        .take(catalog::MAX_COLLECTION)
        .collect();
    let existing_flows: HashSet<String> = ctx
        .store
        .existing_flows(&flows)
        .await?
        .into_iter()
        .collect();
    v.extend(catalog::validate_product(
        product,
        &|e| existing.contains(e),
        &crate::domain::promotion::normalize_json_path,
    ));
    // Whether this server may reach each repository (local paths, plain
    // HTTP) is its own policy, on top of the URL's shape.
    for (i, app) in product.applications.iter().enumerate() {
        if let Some(source) = &app.source
            && !source.repo_url.is_empty()
            && let Err(why) = ctx.engine.git().check_url(&source.repo_url)
        {
            let field = format!("product.applications[{i}].source.repo_url");
            if !v.0.iter().any(|x| x.field == field) {
                v.push(field, why);
            }
        }
    }
    let template = &product.promotion_template_ref;
    if crate::domain::is_dns_label(template) {
        match ctx.store.get_template(template).await {
            Ok(_) => {}
            Err(Error::NotFound(_)) => v.push(
                "product.promotion_template_ref",
                format!("promotion template {template:?} does not exist"),
            ),
            Err(e) => return Err(e),
        }
    }
    for (i, f) in product.promotion_flows.iter().enumerate() {
        if crate::domain::is_dns_label(&f.flow) && !existing_flows.contains(&f.flow) {
            v.push(
                format!("product.promotion_flows[{i}].flow"),
                format!("flow {:?} does not exist", f.flow),
            );
        }
    }
    Ok(())
}

/// Names the product a write is about in the call's audit row.
pub(super) fn describe_product(name: &str) {
    crate::store::audit::describe(format!("product/{name}"), "", "");
}

/// Decodes and validates the product of a create or update request.
async fn checked_product(
    ctx: &Ctx,
    v: &mut Violations,
    p: Option<&pb::Product>,
) -> Result<catalog::Product> {
    let mut product = product_in(v, required("product", p)?);
    check_product(ctx, v, &mut product).await?;
    Ok(product)
}

#[tonic::async_trait]
impl ProductService for ProductApi {
    async fn create_product(
        &self,
        request: Request<pb::CreateProductRequest>,
    ) -> Result<Response<pb::CreateProductResponse>, Status> {
        let req = request.into_inner();
        let mut v = Violations::new();
        let p = checked_product(&self.ctx, &mut v, req.product.as_ref()).await?;
        check(v)?;
        describe_product(&p.name);
        let p = self.ctx.store.create_product(&p).await?;
        Ok(Response::new(pb::CreateProductResponse {
            product: Some(product_out(p)),
        }))
    }

    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Result<Response<pb::GetProductResponse>, Status> {
        let name = request.into_inner().name;
        check_name_field("name", &name)?;
        let p = self.ctx.store.get_product(&name).await?;
        Ok(Response::new(pb::GetProductResponse {
            product: Some(product_out(p)),
        }))
    }

    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        let req = request.into_inner();
        let page = PageRequest::parse("products", req.page_size, &req.page_token)?;
        let page = self.ctx.store.list_products(&page).await?;
        Ok(Response::new(pb::ListProductsResponse {
            products: page.items.into_iter().map(product_out).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_product(
        &self,
        request: Request<pb::UpdateProductRequest>,
    ) -> Result<Response<pb::UpdateProductResponse>, Status> {
        let req = request.into_inner();
        let mut v = Violations::new();
        let p = checked_product(&self.ctx, &mut v, req.product.as_ref()).await?;
        let expected = expected_version(&mut v, req.expected_version);
        check(v)?;
        describe_product(&p.name);
        let p = self.ctx.store.update_product(&p, expected).await?;
        Ok(Response::new(pb::UpdateProductResponse {
            product: Some(product_out(p)),
        }))
    }

    async fn delete_product(
        &self,
        request: Request<pb::DeleteProductRequest>,
    ) -> Result<Response<pb::DeleteProductResponse>, Status> {
        let req = request.into_inner();
        check_name_field("name", &req.name)?;
        let expected = optional_expected_version(req.expected_version)?;
        describe_product(&req.name);
        self.ctx.store.delete_product(&req.name, expected).await?;
        Ok(Response::new(pb::DeleteProductResponse {}))
    }

    async fn report_deployment(
        &self,
        request: Request<pb::ReportDeploymentRequest>,
    ) -> Result<Response<pb::ReportDeploymentResponse>, Status> {
        let principal = crate::api::principal_of(&request);
        let req = request.into_inner();
        let mut v = Violations::new();
        crate::domain::check_name(&mut v, "product", &req.product);
        crate::domain::check_name(&mut v, "environment", &req.environment);
        if req.version.is_empty() {
            v.push("version", "is required");
        } else {
            crate::domain::check_text(&mut v, "version", &req.version);
        }
        crate::domain::check_text(&mut v, "request_id", &req.request_id);
        let commit = req.commit.as_ref().map(|c| commit_in(&mut v, c));
        check(v)?;
        // A report is about one environment, whatever flow it may start.
        crate::store::audit::describe(format!("product/{}", req.product), "", &req.environment);
        super::access::require(
            &principal,
            crate::domain::access::Permission::DeploymentsReport,
            &crate::domain::access::Scope {
                flow: None,
                environments: vec![req.environment.as_str()],
            },
        )?;
        let release = self
            .ctx
            .engine
            .report_deployment(
                &req.product,
                &req.environment,
                &req.version,
                commit.as_ref(),
                &req.request_id,
                &principal.id,
            )
            .await?;
        let app = release.0;
        let release = release.1;
        Ok(Response::new(pb::ReportDeploymentResponse {
            application: Some(application_out(app)),
            release: release.map(release_out),
        }))
    }

    async fn import_product(
        &self,
        request: Request<pb::ImportProductRequest>,
    ) -> Result<Response<pb::ImportProductResponse>, Status> {
        Ok(Response::new(
            template::import_product(&self.ctx, request.into_inner()).await?,
        ))
    }

    async fn export_product(
        &self,
        request: Request<pb::ExportProductRequest>,
    ) -> Result<Response<pb::ExportProductResponse>, Status> {
        Ok(Response::new(
            template::export_product(&self.ctx, request.into_inner()).await?,
        ))
    }

    async fn create_promotion_template(
        &self,
        request: Request<pb::CreatePromotionTemplateRequest>,
    ) -> Result<Response<pb::CreatePromotionTemplateResponse>, Status> {
        Ok(Response::new(
            template::create(&self.ctx, request.into_inner()).await?,
        ))
    }

    async fn get_promotion_template(
        &self,
        request: Request<pb::GetPromotionTemplateRequest>,
    ) -> Result<Response<pb::GetPromotionTemplateResponse>, Status> {
        Ok(Response::new(
            template::get(&self.ctx, request.into_inner()).await?,
        ))
    }

    async fn list_promotion_templates(
        &self,
        request: Request<pb::ListPromotionTemplatesRequest>,
    ) -> Result<Response<pb::ListPromotionTemplatesResponse>, Status> {
        Ok(Response::new(
            template::list(&self.ctx, request.into_inner()).await?,
        ))
    }

    async fn update_promotion_template(
        &self,
        request: Request<pb::UpdatePromotionTemplateRequest>,
    ) -> Result<Response<pb::UpdatePromotionTemplateResponse>, Status> {
        Ok(Response::new(
            template::update(&self.ctx, request.into_inner()).await?,
        ))
    }

    async fn delete_promotion_template(
        &self,
        request: Request<pb::DeletePromotionTemplateRequest>,
    ) -> Result<Response<pb::DeletePromotionTemplateResponse>, Status> {
        Ok(Response::new(
            template::delete(&self.ctx, request.into_inner()).await?,
        ))
    }

    async fn import_promotion_template(
        &self,
        request: Request<pb::ImportPromotionTemplateRequest>,
    ) -> Result<Response<pb::ImportPromotionTemplateResponse>, Status> {
        Ok(Response::new(
            template::import(&self.ctx, request.into_inner()).await?,
        ))
    }

    async fn export_promotion_template(
        &self,
        request: Request<pb::ExportPromotionTemplateRequest>,
    ) -> Result<Response<pb::ExportPromotionTemplateResponse>, Status> {
        Ok(Response::new(
            template::export(&self.ctx, request.into_inner()).await?,
        ))
    }
}
