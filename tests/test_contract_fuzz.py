"""schemathesis against the in-process server, over the implemented operations: every generated
request gets a documented status, a schema-valid body and the documented headers — never a 5xx.

The full harness (all phases, stateful links, our own lifecycle checks) is the contract issue's;
this keeps every handler honest against openapi.yaml meanwhile.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from mock_server.spec import default_spec_path
from tests.test_spec import NOT_YET_IMPLEMENTED, SPEC

IMPLEMENTED = sorted(set(SPEC.operations) - NOT_YET_IMPLEMENTED)
schema = schemathesis.openapi.from_path(str(default_spec_path())).include(operation_id=IMPLEMENTED)
# Unknown query parameters are ignored, as DRF (and so Avala) does; see the spec's description.
schema.config.generation.allow_extra_parameters = False


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_implemented_operations_conform(case, live):
    # A label outside the project's taxonomy is a schema-valid body that the rules reject with 400
    # (documented on AutoLabelJobCreate.labels); that is the only positive-data rejection we allow.
    case.call_and_validate(
        base_url=live.base_url,
        headers={"X-Avala-Api-Key": live.api_key},
        excluded_checks=[positive_data_acceptance],
    )
