//! Named promotion templates (`ProductService.*PromotionTemplate*`), the
//! products that refer to them, and the Codefresh YAML import and export of
//! templates and products.

use super::*;

/// A template reading the version from `values.yaml` and promoting its tag.
fn tag_template(name: &str) -> pb::NamedPromotionTemplate {
    pb::NamedPromotionTemplate {
        name: name.into(),
        description: "the image tag".into(),
        template: Some(pb::PromotionTemplate {
            version_source: Some(pb::VersionSource {
                file: "values.yaml".into(),
                json_path: "$image.tag".into(),
            }),
            promotion: vec![pb::PromotedFile {
                file: "values.yaml".into(),
                json_paths: vec!["$.image.tag".into()],
            }],
        }),
        priority: 3,
        ..Default::default()
    }
}

/// A product of one dev application using template `template`.
fn product_using(name: &str, template: &str) -> pb::Product {
    pb::Product {
        name: name.into(),
        applications: vec![app("dev", &format!("{name}-dev"), "")],
        promotion_template_ref: template.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn templates_have_crud_with_versions() {
    let server = TestServer::start().await;
    let t = create_template(&server, tag_template("tag"))
        .await
        .expect("create");
    assert_eq!(t.version, 1);
    let vs = t.template.as_ref().and_then(|t| t.version_source.as_ref());
    assert_eq!(
        vs.map(|v| v.json_path.as_str()),
        Some("$.image.tag"),
        "the $image shorthand is stored normalized"
    );
    expect_code(
        create_template(&server, tag_template("tag")).await,
        Code::AlreadyExists,
    );
    create_template(&server, tag_template("another"))
        .await
        .expect("second");
    let page = list_templates(&server, 0, "").await.expect("list");
    let names: Vec<&str> = page
        .promotion_templates
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names, ["another", "tag"]);

    let mut changed = t.clone();
    changed.description = "changed".into();
    let updated = update_template(&server, changed.clone(), 1)
        .await
        .expect("update");
    assert_eq!(
        (updated.version, updated.description.as_str()),
        (2, "changed")
    );
    expect_code(update_template(&server, changed, 1).await, Code::Aborted);
    assert_eq!(get_template(&server, "tag").await.expect("get").version, 2);

    // Bad input: every problem at once, and nothing changes.
    let mut bad = tag_template("Bad");
    bad.template = Some(pb::PromotionTemplate {
        version_source: None,
        promotion: vec![pb::PromotedFile {
            file: "../x.yaml".into(),
            json_paths: vec!["not a path".into()],
        }],
    });
    bad.application_source_selector = Some(pb::LabelSelector {
        match_expressions: vec![pb::LabelSelectorRequirement {
            key: "team".into(),
            operator: pb::LabelSelectorOperator::Exists as i32,
            values: vec!["x".into()],
        }],
        ..Default::default()
    });
    expect_invalid(
        create_template(&server, bad).await,
        &[
            "promotion_template.name",
            "promotion_template.template.promotion[0].file",
            "promotion_template.template.promotion[0].json_paths[0]",
            "promotion_template.application_source_selector.match_expressions[0].values",
        ],
    );
    expect_code(get_template(&server, "bad").await, Code::NotFound);

    delete_template(&server, "another", 0)
        .await
        .expect("delete");
    expect_code(get_template(&server, "another").await, Code::NotFound);
    expect_code(delete_template(&server, "tag", 1).await, Code::Aborted);
}

#[tokio::test]
async fn products_refer_to_templates_that_exist_and_keep_them() {
    let server = TestServer::start().await;
    create_envs(&server, &["dev"], pb::EnvironmentKind::NonProduction).await;
    let missing = expect_invalid(
        create_product(&server, product_using("shop", "tag")).await,
        &["product.promotion_template_ref"],
    );
    assert!(
        violations(&missing)[0].1.contains("\"tag\" does not exist"),
        "{missing:?}"
    );
    create_template(&server, tag_template("tag"))
        .await
        .expect("template");
    let mut both = product_using("shop", "tag");
    both.promotion_template = tag_template("x").template;
    expect_invalid(
        create_product(&server, both).await,
        &["product.promotion_template_ref"],
    );
    let p = create_product(&server, product_using("shop", "tag"))
        .await
        .expect("create");
    assert_eq!(p.promotion_template_ref, "tag");
    create_product(&server, product_using("cart", "tag"))
        .await
        .expect("second product");

    let refused = expect_code(
        delete_template(&server, "tag", 0).await,
        Code::FailedPrecondition,
    );
    assert_message_names(&refused, &["tag", "cart", "shop"]);

    // Once no product refers to it, it can go.
    for name in ["shop", "cart"] {
        change_product(&server, name, |p| p.promotion_template_ref.clear()).await;
    }
    assert_eq!(
        get_product(&server, "shop")
            .await
            .expect("get")
            .promotion_template_ref,
        ""
    );
    delete_template(&server, "tag", 0).await.expect("delete");
}

/// Codefresh's "Promotion Template YAML" example.
const TEMPLATE_YAML: &str = r#"
apiVersion: codefresh.io/v1beta1
kind: PromotionTemplate
metadata:
  name: base-helm
spec:
  applicationSourceSelector:
    matchLabels:
      codefresh.io/product: loans
  priority: 1
  versionSource:
    file: Chart.yaml
    jsonPath: $appVersion
  promotion:
    Chart.yaml:
      jsonPaths:
      - $.appVersion
      - $.version
    values.yaml:
      jsonPaths:
      - $..image
"#;

fn product_yaml(version: &str, concurrency: &str) -> String {
    format!(
        r#"apiVersion: codefresh.io/{version}
kind: Product
metadata:
  name: loans
  annotations:
    description: loans and mortgages
    promoflow.io/applications: |
      - environment: dev
        name: loans-dev
        version: "1.0.0"
        source:
          repoURL: https://git.example.com/team/apps.git
          targetRevision: main
          path: apps/dev
      - environment: qa
        name: loans-qa
spec:
  promotionTemplateRef: base-helm
  promotionFlows:
    - name: to-qa
      gitTriggerSelectors:
        - key: commitMessage
          operator: In
          values:
            - "*deploy*"
{concurrency}"#
    )
}

#[tokio::test]
async fn codefresh_yaml_imports_and_exports_losslessly() {
    let server = TestServer::start().await;
    create_envs(&server, &["dev", "qa"], pb::EnvironmentKind::NonProduction).await;
    create_flow(&server, flow("to-qa", "dev", vec![step("qa", &["dev"])]))
        .await
        .expect("flow");
    let mut products = server.products();

    // The template first: the product refers to it.
    let import_product = |yaml: String, replace| pb::ImportProductRequest { yaml, replace };
    let early = expect_invalid(
        products
            .import_product(import_product(product_yaml("v1beta1", ""), false))
            .await,
        &["product.promotion_template_ref"],
    );
    assert!(
        violations(&early)[0]
            .1
            .contains("\"base-helm\" does not exist"),
        "{early:?}"
    );
    let t = products
        .import_promotion_template(pb::ImportPromotionTemplateRequest {
            yaml: TEMPLATE_YAML.into(),
            replace: false,
        })
        .await
        .expect("import template")
        .into_inner()
        .promotion_template
        .expect("template");
    assert_eq!((t.name.as_str(), t.priority), ("base-helm", 1));
    let exported = products
        .export_promotion_template(pb::ExportPromotionTemplateRequest {
            name: "base-helm".into(),
        })
        .await
        .expect("export template")
        .into_inner()
        .yaml;
    expect_code(
        products
            .import_promotion_template(pb::ImportPromotionTemplateRequest {
                yaml: exported.clone(),
                replace: false,
            })
            .await,
        Code::AlreadyExists,
    );
    let again = products
        .import_promotion_template(pb::ImportPromotionTemplateRequest {
            yaml: exported,
            replace: true,
        })
        .await
        .expect("replace template")
        .into_inner()
        .promotion_template
        .expect("template");
    assert_eq!(again.version, 2);
    assert_eq!(
        (again.template, again.application_source_selector),
        (t.template, t.application_source_selector),
        "export → import gives the same template"
    );

    // Both apiVersions; v1beta1 has no concurrency.
    let p = products
        .import_product(import_product(product_yaml("v1beta1", ""), false))
        .await
        .expect("import v1beta1")
        .into_inner()
        .product
        .expect("product");
    assert_eq!(p.applications.len(), 2);
    assert_eq!(p.applications[0].version, "1.0.0");
    assert_eq!(p.promotion_flows[0].flow, "to-qa");
    let refused = expect_invalid(
        products
            .import_product(import_product(
                product_yaml("v1beta1", "  concurrency: terminate\n"),
                true,
            ))
            .await,
        &["yaml"],
    );
    assert!(
        violations(&refused)[0]
            .1
            .starts_with("spec.concurrency: is a field of codefresh.io/v1beta2"),
        "{refused:?}"
    );
    let p = products
        .import_product(import_product(
            product_yaml("v1beta2", "  concurrency: terminate\n"),
            true,
        ))
        .await
        .expect("import v1beta2 over it")
        .into_inner()
        .product
        .expect("product");
    assert_eq!(p.version, 2);
    assert_eq!(p.concurrency, pb::Concurrency::Terminate as i32);

    let yaml = products
        .export_product(pb::ExportProductRequest {
            name: "loans".into(),
        })
        .await
        .expect("export product")
        .into_inner()
        .yaml;
    assert_eq!(yaml, product_yaml("v1beta2", "  concurrency: terminate\n"));
    let reimported = products
        .import_product(import_product(yaml, true))
        .await
        .expect("re-import")
        .into_inner()
        .product
        .expect("product");
    let strip = |mut p: pb::Product| {
        p.version = 0;
        p.update_time = None;
        for a in &mut p.applications {
            a.update_time = None;
        }
        p
    };
    assert_eq!(strip(reimported), strip(p), "import → export → import");

    // Unknown fields name the field; nothing changes.
    let typo = product_yaml("v1beta2", "  concurency: queue\n");
    let bad = expect_invalid(
        products.import_product(import_product(typo, true)).await,
        &["yaml"],
    );
    assert!(
        violations(&bad)[0]
            .1
            .starts_with("spec.concurency: unknown field `concurency`"),
        "{bad:?}"
    );
    let after = get_product(&server, "loans").await.expect("get");
    assert_eq!(after.version, 3, "the bad import changed nothing");
}
