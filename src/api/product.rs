//! `ProductService`.

use std::collections::HashSet;

use tonic::{Request, Response, Status};

use super::{
    Ctx, check, enum_in, expected_version, optional_expected_version, required, timestamp,
};
use crate::domain::Violations;
use crate::domain::catalog::{
    self, Application, Commit, Concurrency, Meta, ProductFlow, SelectorKey, SelectorOperator,
    TriggerSelector,
};
use crate::error::Result;
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

fn commit_out(c: Commit) -> pb::Commit {
    pb::Commit {
        sha: c.sha,
        message: c.message,
        author: c.author,
        revision: c.revision,
    }
}

fn commit_in(c: &pb::Commit) -> Commit {
    Commit {
        sha: c.sha.clone(),
        message: c.message.clone(),
        author: c.author.clone(),
        revision: c.revision.clone(),
    }
}

pub fn application_out(a: Application) -> pb::Application {
    pb::Application {
        environment: a.environment,
        name: a.name,
        version: a.version,
        last_commit: a.last_commit.map(commit_out),
        update_time: timestamp(a.update_time),
    }
}

pub fn product_out(p: catalog::Product) -> pb::Product {
    pb::Product {
        name: p.name,
        description: p.description,
        applications: p.applications.into_iter().map(application_out).collect(),
        concurrency: match p.concurrency {
            Concurrency::Queue => pb::Concurrency::Queue,
            Concurrency::Terminate => pb::Concurrency::Terminate,
        } as i32,
        promotion_flows: p
            .promotion_flows
            .into_iter()
            .map(|f| pb::ProductPromotionFlow {
                flow: f.flow,
                selectors: f
                    .selectors
                    .into_iter()
                    .map(|s| pb::TriggerSelector {
                        key: match s.key {
                            SelectorKey::CommitMessage => pb::SelectorKey::CommitMessage,
                            SelectorKey::GitRevision => pb::SelectorKey::GitRevision,
                        } as i32,
                        operator: match s.operator {
                            SelectorOperator::In => pb::SelectorOperator::In,
                            SelectorOperator::NotIn => pb::SelectorOperator::NotIn,
                        } as i32,
                        values: s.values,
                    })
                    .collect(),
            })
            .collect(),
        version: p.meta.version,
        create_time: timestamp(p.meta.create_time),
        update_time: timestamp(p.meta.update_time),
    }
}

/// Decodes a product and validates it, including that every application's
/// environment exists (looked up in one query).
async fn product_in(ctx: &Ctx, v: &mut Violations, p: &pb::Product) -> Result<catalog::Product> {
    let concurrency = match enum_in::<pb::Concurrency>(v, "product.concurrency", p.concurrency) {
        Some(pb::Concurrency::Terminate) => Concurrency::Terminate,
        _ => Concurrency::Queue,
    };
    let mut promotion_flows = Vec::with_capacity(p.promotion_flows.len());
    for (i, f) in p.promotion_flows.iter().enumerate() {
        let mut selectors = Vec::with_capacity(f.selectors.len());
        for (j, s) in f.selectors.iter().enumerate() {
            let field = format!("product.promotion_flows[{i}].selectors[{j}]");
            // An invalid key or operator is reported and replaced by a
            // placeholder, so later selectors keep their indexes in paths.
            let key = match enum_in::<pb::SelectorKey>(v, &format!("{field}.key"), s.key) {
                Some(pb::SelectorKey::GitRevision) => SelectorKey::GitRevision,
                Some(pb::SelectorKey::Unspecified) => {
                    v.push(format!("{field}.key"), "is required");
                    SelectorKey::CommitMessage
                }
                _ => SelectorKey::CommitMessage,
            };
            let operator = match enum_in::<pb::SelectorOperator>(
                v,
                &format!("{field}.operator"),
                s.operator,
            ) {
                Some(pb::SelectorOperator::NotIn) => SelectorOperator::NotIn,
                Some(pb::SelectorOperator::Unspecified) => {
                    v.push(format!("{field}.operator"), "is required");
                    SelectorOperator::In
                }
                _ => SelectorOperator::In,
            };
            selectors.push(TriggerSelector {
                key,
                operator,
                values: s.values.clone(),
            });
        }
        promotion_flows.push(ProductFlow {
            flow: f.flow.clone(),
            selectors,
        });
    }
    let product = catalog::Product {
        name: p.name.clone(),
        description: p.description.clone(),
        applications: p
            .applications
            .iter()
            .map(|a| Application {
                environment: a.environment.clone(),
                name: a.name.clone(),
                version: a.version.clone(),
                // Output only: commits come with deployment reports.
                last_commit: None,
                update_time: None,
            })
            .collect(),
        concurrency,
        promotion_flows,
        meta: Meta::default(),
    };
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
    v.extend(catalog::validate_product(&product, &|e| {
        existing.contains(e)
    }));
    for (i, f) in product.promotion_flows.iter().enumerate() {
        if crate::domain::is_dns_label(&f.flow) && !existing_flows.contains(&f.flow) {
            v.push(
                format!("product.promotion_flows[{i}].flow"),
                format!("flow {:?} does not exist", f.flow),
            );
        }
    }
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
        let p = product_in(
            &self.ctx,
            &mut v,
            required("product", req.product.as_ref())?,
        )
        .await?;
        check(v)?;
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
        super::check_name_field("name", &name)?;
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
        let p = product_in(
            &self.ctx,
            &mut v,
            required("product", req.product.as_ref())?,
        )
        .await?;
        let expected = expected_version(&mut v, req.expected_version);
        check(v)?;
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
        let expected = optional_expected_version(req.expected_version)?;
        self.ctx.store.delete_product(&req.name, expected).await?;
        Ok(Response::new(pb::DeleteProductResponse {}))
    }

    async fn report_deployment(
        &self,
        request: Request<pb::ReportDeploymentRequest>,
    ) -> Result<Response<pb::ReportDeploymentResponse>, Status> {
        let req = request.into_inner();
        let mut v = Violations::new();
        crate::domain::check_name(&mut v, "product", &req.product);
        crate::domain::check_name(&mut v, "environment", &req.environment);
        if req.version.is_empty() {
            v.push("version", "is required");
        } else if req.version.len() > catalog::MAX_TEXT {
            v.push("version", "is too long");
        }
        check(v)?;
        let commit = req.commit.as_ref().map(commit_in);
        let release = self
            .ctx
            .engine
            .report_deployment(
                &req.product,
                &req.environment,
                &req.version,
                commit.as_ref(),
                &req.request_id,
            )
            .await?;
        let app = release.0;
        let release = release.1;
        Ok(Response::new(pb::ReportDeploymentResponse {
            application: Some(application_out(app)),
            release: release.map(super::release::release_out),
        }))
    }
}
