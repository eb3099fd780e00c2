"""The ASGI application ``manage.py runrealtime`` serves when the project has no WhiteNoise.

The project's ``ASGI_APPLICATION`` wrapped in Django's own static files handler
(the one ``runserver`` uses), so ``/static/realtime/dexter-realtime.js`` works
out of the box; WebSockets and every other path go straight to the project.
With WhiteNoise in ``MIDDLEWARE`` (as in production, and in Dexter) it is not
used. Importing it builds the application: import it only as an entry point.
"""

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.utils.module_loading import import_string

application = ASGIStaticFilesHandler(import_string(settings.ASGI_APPLICATION))
