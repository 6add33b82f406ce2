-- The 1:N gallery and rewrap walk a tenant's templates in template_id order, page by page.
CREATE INDEX templates_tenant ON templates (tenant_id, template_id);
