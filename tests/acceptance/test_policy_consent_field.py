"""`syncctl policy create --consent-field`: a consent policy stated by tritonX's snapshot field
(gdpr.md "tritonX") is made from the command line as the SQL function makes it."""

from __future__ import annotations

from tests.acceptance.conftest import syncctl

_CREATE = (
    "policy", "create", "news", "--name", "Newsletter", "--description", "Our newsletter",
    "--legal-basis", "consent", "--category", "shop.customer.email",
)  # fmt: skip


def test_a_consent_policy_takes_tritonxs_field(dsn: str) -> None:
    created = syncctl(
        *_CREATE, "--membership", "consent", "--consent-field", "newsletter_opt_in", dsn=dsn
    )
    assert created.returncode == 0, created.stderr
    shown = syncctl("policy", "show", "news", dsn=dsn)
    assert shown.returncode == 0, shown.stderr
    assert "tritonX field" in shown.stdout and "newsletter_opt_in" in shown.stdout


def test_a_field_tritonx_does_not_state_consent_by_is_a_usage_error(dsn: str) -> None:
    refused = syncctl(*_CREATE, "--membership", "consent", "--consent-field", "email", dsn=dsn)
    assert refused.returncode == 2
    assert "--consent-field" in refused.stderr
    assert syncctl("policy", "show", "news", dsn=dsn).returncode != 0
