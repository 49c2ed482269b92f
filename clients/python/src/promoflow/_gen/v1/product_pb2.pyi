import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from . import release_pb2 as _release_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Concurrency(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONCURRENCY_UNSPECIFIED: _ClassVar[Concurrency]
    CONCURRENCY_QUEUE: _ClassVar[Concurrency]
    CONCURRENCY_TERMINATE: _ClassVar[Concurrency]

class SelectorKey(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SELECTOR_KEY_UNSPECIFIED: _ClassVar[SelectorKey]
    SELECTOR_KEY_COMMIT_MESSAGE: _ClassVar[SelectorKey]
    SELECTOR_KEY_GIT_REVISION: _ClassVar[SelectorKey]

class SelectorOperator(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SELECTOR_OPERATOR_UNSPECIFIED: _ClassVar[SelectorOperator]
    SELECTOR_OPERATOR_IN: _ClassVar[SelectorOperator]
    SELECTOR_OPERATOR_NOT_IN: _ClassVar[SelectorOperator]

class LabelSelectorOperator(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LABEL_SELECTOR_OPERATOR_UNSPECIFIED: _ClassVar[LabelSelectorOperator]
    LABEL_SELECTOR_OPERATOR_IN: _ClassVar[LabelSelectorOperator]
    LABEL_SELECTOR_OPERATOR_NOT_IN: _ClassVar[LabelSelectorOperator]
    LABEL_SELECTOR_OPERATOR_EXISTS: _ClassVar[LabelSelectorOperator]
    LABEL_SELECTOR_OPERATOR_DOES_NOT_EXIST: _ClassVar[LabelSelectorOperator]
CONCURRENCY_UNSPECIFIED: Concurrency
CONCURRENCY_QUEUE: Concurrency
CONCURRENCY_TERMINATE: Concurrency
SELECTOR_KEY_UNSPECIFIED: SelectorKey
SELECTOR_KEY_COMMIT_MESSAGE: SelectorKey
SELECTOR_KEY_GIT_REVISION: SelectorKey
SELECTOR_OPERATOR_UNSPECIFIED: SelectorOperator
SELECTOR_OPERATOR_IN: SelectorOperator
SELECTOR_OPERATOR_NOT_IN: SelectorOperator
LABEL_SELECTOR_OPERATOR_UNSPECIFIED: LabelSelectorOperator
LABEL_SELECTOR_OPERATOR_IN: LabelSelectorOperator
LABEL_SELECTOR_OPERATOR_NOT_IN: LabelSelectorOperator
LABEL_SELECTOR_OPERATOR_EXISTS: LabelSelectorOperator
LABEL_SELECTOR_OPERATOR_DOES_NOT_EXIST: LabelSelectorOperator

class Commit(_message.Message):
    __slots__ = ("sha", "message", "author", "revision")
    SHA_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    sha: str
    message: str
    author: str
    revision: str
    def __init__(self, sha: _Optional[str] = ..., message: _Optional[str] = ..., author: _Optional[str] = ..., revision: _Optional[str] = ...) -> None: ...

class Application(_message.Message):
    __slots__ = ("environment", "name", "version", "last_commit", "update_time", "source", "argocd")
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LAST_COMMIT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ARGOCD_FIELD_NUMBER: _ClassVar[int]
    environment: str
    name: str
    version: str
    last_commit: Commit
    update_time: _timestamp_pb2.Timestamp
    source: GitSource
    argocd: ArgoCdApp
    def __init__(self, environment: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., last_commit: _Optional[_Union[Commit, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[_Union[GitSource, _Mapping]] = ..., argocd: _Optional[_Union[ArgoCdApp, _Mapping]] = ...) -> None: ...

class ArgoCdApp(_message.Message):
    __slots__ = ("server", "name")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    server: str
    name: str
    def __init__(self, server: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class GitSource(_message.Message):
    __slots__ = ("repo_url", "branch", "path")
    REPO_URL_FIELD_NUMBER: _ClassVar[int]
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    repo_url: str
    branch: str
    path: str
    def __init__(self, repo_url: _Optional[str] = ..., branch: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class PromotionTemplate(_message.Message):
    __slots__ = ("version_source", "promotion")
    VERSION_SOURCE_FIELD_NUMBER: _ClassVar[int]
    PROMOTION_FIELD_NUMBER: _ClassVar[int]
    version_source: VersionSource
    promotion: _containers.RepeatedCompositeFieldContainer[PromotedFile]
    def __init__(self, version_source: _Optional[_Union[VersionSource, _Mapping]] = ..., promotion: _Optional[_Iterable[_Union[PromotedFile, _Mapping]]] = ...) -> None: ...

class VersionSource(_message.Message):
    __slots__ = ("file", "json_path")
    FILE_FIELD_NUMBER: _ClassVar[int]
    JSON_PATH_FIELD_NUMBER: _ClassVar[int]
    file: str
    json_path: str
    def __init__(self, file: _Optional[str] = ..., json_path: _Optional[str] = ...) -> None: ...

class PromotedFile(_message.Message):
    __slots__ = ("file", "json_paths")
    FILE_FIELD_NUMBER: _ClassVar[int]
    JSON_PATHS_FIELD_NUMBER: _ClassVar[int]
    file: str
    json_paths: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, file: _Optional[str] = ..., json_paths: _Optional[_Iterable[str]] = ...) -> None: ...

class TriggerSelector(_message.Message):
    __slots__ = ("key", "operator", "values")
    KEY_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    key: SelectorKey
    operator: SelectorOperator
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, key: _Optional[_Union[SelectorKey, str]] = ..., operator: _Optional[_Union[SelectorOperator, str]] = ..., values: _Optional[_Iterable[str]] = ...) -> None: ...

class ProductPromotionFlow(_message.Message):
    __slots__ = ("flow", "selectors")
    FLOW_FIELD_NUMBER: _ClassVar[int]
    SELECTORS_FIELD_NUMBER: _ClassVar[int]
    flow: str
    selectors: _containers.RepeatedCompositeFieldContainer[TriggerSelector]
    def __init__(self, flow: _Optional[str] = ..., selectors: _Optional[_Iterable[_Union[TriggerSelector, _Mapping]]] = ...) -> None: ...

class Product(_message.Message):
    __slots__ = ("name", "description", "applications", "concurrency", "promotion_flows", "version", "create_time", "update_time", "promotion_template", "promotion_template_ref")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    APPLICATIONS_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    PROMOTION_FLOWS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PROMOTION_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    PROMOTION_TEMPLATE_REF_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    applications: _containers.RepeatedCompositeFieldContainer[Application]
    concurrency: Concurrency
    promotion_flows: _containers.RepeatedCompositeFieldContainer[ProductPromotionFlow]
    version: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    promotion_template: PromotionTemplate
    promotion_template_ref: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., applications: _Optional[_Iterable[_Union[Application, _Mapping]]] = ..., concurrency: _Optional[_Union[Concurrency, str]] = ..., promotion_flows: _Optional[_Iterable[_Union[ProductPromotionFlow, _Mapping]]] = ..., version: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., promotion_template: _Optional[_Union[PromotionTemplate, _Mapping]] = ..., promotion_template_ref: _Optional[str] = ...) -> None: ...

class CreateProductRequest(_message.Message):
    __slots__ = ("product",)
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    product: Product
    def __init__(self, product: _Optional[_Union[Product, _Mapping]] = ...) -> None: ...

class CreateProductResponse(_message.Message):
    __slots__ = ("product",)
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    product: Product
    def __init__(self, product: _Optional[_Union[Product, _Mapping]] = ...) -> None: ...

class GetProductRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetProductResponse(_message.Message):
    __slots__ = ("product",)
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    product: Product
    def __init__(self, product: _Optional[_Union[Product, _Mapping]] = ...) -> None: ...

class ListProductsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListProductsResponse(_message.Message):
    __slots__ = ("products", "next_page_token")
    PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    products: _containers.RepeatedCompositeFieldContainer[Product]
    next_page_token: str
    def __init__(self, products: _Optional[_Iterable[_Union[Product, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateProductRequest(_message.Message):
    __slots__ = ("product", "expected_version")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    product: Product
    expected_version: int
    def __init__(self, product: _Optional[_Union[Product, _Mapping]] = ..., expected_version: _Optional[int] = ...) -> None: ...

class UpdateProductResponse(_message.Message):
    __slots__ = ("product",)
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    product: Product
    def __init__(self, product: _Optional[_Union[Product, _Mapping]] = ...) -> None: ...

class DeleteProductRequest(_message.Message):
    __slots__ = ("name", "expected_version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    expected_version: int
    def __init__(self, name: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class DeleteProductResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReportDeploymentRequest(_message.Message):
    __slots__ = ("product", "environment", "version", "commit", "request_id")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    product: str
    environment: str
    version: str
    commit: Commit
    request_id: str
    def __init__(self, product: _Optional[str] = ..., environment: _Optional[str] = ..., version: _Optional[str] = ..., commit: _Optional[_Union[Commit, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ReportDeploymentResponse(_message.Message):
    __slots__ = ("application", "release")
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    application: Application
    release: _release_pb2.Release
    def __init__(self, application: _Optional[_Union[Application, _Mapping]] = ..., release: _Optional[_Union[_release_pb2.Release, _Mapping]] = ...) -> None: ...

class ImportProductRequest(_message.Message):
    __slots__ = ("yaml", "replace")
    YAML_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    yaml: str
    replace: bool
    def __init__(self, yaml: _Optional[str] = ..., replace: _Optional[bool] = ...) -> None: ...

class ImportProductResponse(_message.Message):
    __slots__ = ("product",)
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    product: Product
    def __init__(self, product: _Optional[_Union[Product, _Mapping]] = ...) -> None: ...

class ExportProductRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ExportProductResponse(_message.Message):
    __slots__ = ("yaml",)
    YAML_FIELD_NUMBER: _ClassVar[int]
    yaml: str
    def __init__(self, yaml: _Optional[str] = ...) -> None: ...

class LabelSelectorRequirement(_message.Message):
    __slots__ = ("key", "operator", "values")
    KEY_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    key: str
    operator: LabelSelectorOperator
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, key: _Optional[str] = ..., operator: _Optional[_Union[LabelSelectorOperator, str]] = ..., values: _Optional[_Iterable[str]] = ...) -> None: ...

class LabelSelector(_message.Message):
    __slots__ = ("match_labels", "match_expressions")
    class MatchLabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MATCH_LABELS_FIELD_NUMBER: _ClassVar[int]
    MATCH_EXPRESSIONS_FIELD_NUMBER: _ClassVar[int]
    match_labels: _containers.ScalarMap[str, str]
    match_expressions: _containers.RepeatedCompositeFieldContainer[LabelSelectorRequirement]
    def __init__(self, match_labels: _Optional[_Mapping[str, str]] = ..., match_expressions: _Optional[_Iterable[_Union[LabelSelectorRequirement, _Mapping]]] = ...) -> None: ...

class NamedPromotionTemplate(_message.Message):
    __slots__ = ("name", "description", "template", "application_source_selector", "priority", "version", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_SOURCE_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    template: PromotionTemplate
    application_source_selector: LabelSelector
    priority: int
    version: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., template: _Optional[_Union[PromotionTemplate, _Mapping]] = ..., application_source_selector: _Optional[_Union[LabelSelector, _Mapping]] = ..., priority: _Optional[int] = ..., version: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreatePromotionTemplateRequest(_message.Message):
    __slots__ = ("promotion_template",)
    PROMOTION_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    promotion_template: NamedPromotionTemplate
    def __init__(self, promotion_template: _Optional[_Union[NamedPromotionTemplate, _Mapping]] = ...) -> None: ...

class CreatePromotionTemplateResponse(_message.Message):
    __slots__ = ("promotion_template",)
    PROMOTION_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    promotion_template: NamedPromotionTemplate
    def __init__(self, promotion_template: _Optional[_Union[NamedPromotionTemplate, _Mapping]] = ...) -> None: ...

class GetPromotionTemplateRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetPromotionTemplateResponse(_message.Message):
    __slots__ = ("promotion_template",)
    PROMOTION_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    promotion_template: NamedPromotionTemplate
    def __init__(self, promotion_template: _Optional[_Union[NamedPromotionTemplate, _Mapping]] = ...) -> None: ...

class ListPromotionTemplatesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPromotionTemplatesResponse(_message.Message):
    __slots__ = ("promotion_templates", "next_page_token")
    PROMOTION_TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    promotion_templates: _containers.RepeatedCompositeFieldContainer[NamedPromotionTemplate]
    next_page_token: str
    def __init__(self, promotion_templates: _Optional[_Iterable[_Union[NamedPromotionTemplate, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdatePromotionTemplateRequest(_message.Message):
    __slots__ = ("promotion_template", "expected_version")
    PROMOTION_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    promotion_template: NamedPromotionTemplate
    expected_version: int
    def __init__(self, promotion_template: _Optional[_Union[NamedPromotionTemplate, _Mapping]] = ..., expected_version: _Optional[int] = ...) -> None: ...

class UpdatePromotionTemplateResponse(_message.Message):
    __slots__ = ("promotion_template",)
    PROMOTION_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    promotion_template: NamedPromotionTemplate
    def __init__(self, promotion_template: _Optional[_Union[NamedPromotionTemplate, _Mapping]] = ...) -> None: ...

class DeletePromotionTemplateRequest(_message.Message):
    __slots__ = ("name", "expected_version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    expected_version: int
    def __init__(self, name: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class DeletePromotionTemplateResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ImportPromotionTemplateRequest(_message.Message):
    __slots__ = ("yaml", "replace")
    YAML_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    yaml: str
    replace: bool
    def __init__(self, yaml: _Optional[str] = ..., replace: _Optional[bool] = ...) -> None: ...

class ImportPromotionTemplateResponse(_message.Message):
    __slots__ = ("promotion_template",)
    PROMOTION_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    promotion_template: NamedPromotionTemplate
    def __init__(self, promotion_template: _Optional[_Union[NamedPromotionTemplate, _Mapping]] = ...) -> None: ...

class ExportPromotionTemplateRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ExportPromotionTemplateResponse(_message.Message):
    __slots__ = ("yaml",)
    YAML_FIELD_NUMBER: _ClassVar[int]
    yaml: str
    def __init__(self, yaml: _Optional[str] = ...) -> None: ...
