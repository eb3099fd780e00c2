"""The dashboard page at ``/``: a static shell; dashboard.js does the rest over the API and the socket."""

from django.views.decorators.http import require_safe
from django.views.generic import TemplateView

dashboard = require_safe(TemplateView.as_view(template_name="dashboard.html"))
