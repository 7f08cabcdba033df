"""Load with ``SCHEMATHESIS_HOOKS=avala_mock.contracts.schemathesis_hooks schemathesis run …`` so a plain
schemathesis run obeys the rules ``openapi.yaml`` states only in prose (see :mod:`.unstated`)."""

import schemathesis

from avala_mock.contracts.unstated import map_case

schemathesis.hook(map_case)
