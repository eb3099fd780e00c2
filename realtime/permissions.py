from rest_framework.permissions import BasePermission

PUBLISH_PERMISSION = "realtime.publish_message"


class CanPublish(BasePermission):
    """Staff, or a service account given the ``realtime.publish_message`` permission."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and (user.is_staff or user.has_perm(PUBLISH_PERMISSION)))


class IsStaff(BasePermission):
    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)
