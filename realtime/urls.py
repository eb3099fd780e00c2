from django.urls import path

from . import collab_http, views

urlpatterns = [
    path("channels/<str:channel>/history/", views.HistoryView.as_view(), name="realtime-history"),
    path("channels/presence/", views.ChannelPresenceCountsView.as_view(), name="realtime-channel-presence-counts"),
    path("channels/<str:channel>/presence/", views.ChannelPresenceView.as_view(), name="realtime-channel-presence"),
    path("channels/<str:channel>/activity/", collab_http.ChannelActivityView.as_view(), name="realtime-activity"),
    path("channels/<str:channel>/signal/", collab_http.ChannelSignalView.as_view(), name="realtime-signal"),
    path("presence/", views.PresenceView.as_view(), name="realtime-presence"),
    path("broadcast/", views.BroadcastView.as_view(), name="realtime-broadcast"),
    path("notify/", views.NotifyView.as_view(), name="realtime-notify"),
    path("stats/", views.StatsView.as_view(), name="realtime-stats"),
    path("metrics/", views.MetricsView.as_view(), name="realtime-metrics"),
    path("connections/<str:connection_id>/disconnect/", views.DisconnectView.as_view(), name="realtime-disconnect"),
]
