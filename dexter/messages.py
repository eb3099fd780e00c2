"""Django's ``MessageMiddleware``, with the message storage built only when a request uses it.

The stock middleware builds a ``FallbackStorage`` (a cookie storage with its
signer, and a session storage) for every request and asks it to update the
response at the end. Only the pages (the admin, the dashboard's sign-in) ever
add or read a message; the API never does, yet each publish POST paid for
the storage (bench/README.md, issue 13, seventh round). Here the storage is a
``SimpleLazyObject``: ``messages.add_message``, ``get_messages`` and the
``messages`` context processor reach it through ``request._messages`` as
before and build it on first use. A storage never built read nothing and added
nothing, so the stock ``update`` would not have touched the response either;
it is skipped.
"""

from __future__ import annotations

from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage import default_storage
from django.utils.functional import SimpleLazyObject, empty


class LazyMessageMiddleware(MessageMiddleware):
    def process_request(self, request):
        request._messages = SimpleLazyObject(lambda: default_storage(request))

    def process_response(self, request, response):
        storage = request.__dict__.get("_messages")
        if isinstance(storage, SimpleLazyObject) and storage._wrapped is empty:
            return response
        return super().process_response(request, response)
