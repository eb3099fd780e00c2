"""The pages: the dashboard at ``/`` and the operations console at ``/ops/``.

Both are static shells; their scripts do the rest over the API and the socket,
where the policy decides: the console's data (the ``ops`` channel, the
disconnect endpoint) is staff-only, so a non-staff user sees only "staff only".
"""

from django.views.decorators.http import require_safe
from django.views.generic import TemplateView

dashboard = require_safe(TemplateView.as_view(template_name="dashboard.html"))
ops_console = require_safe(TemplateView.as_view(template_name="ops.html"))

# /issues/<id>/: one issue worked on together (issue.js); the shell is static, the page asks the API.
issue_page = require_safe(TemplateView.as_view(template_name="issue.html"))
