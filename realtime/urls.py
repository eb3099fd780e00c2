from django.urls import path

from . import views

urlpatterns = [
    path("channels/<str:channel>/history/", views.HistoryView.as_view(), name="realtime-history"),
    path("channels/presence/", views.ChannelPresenceCountsView.as_view(), name="realtime-channel-presence-counts"),
    path("channels/<str:channel>/presence/", views.ChannelPresenceView.as_view(), name="realtime-channel-presence"),
    path("presence/", views.PresenceView.as_view(), name="realtime-presence"),
    path("broadcast/", views.BroadcastView.as_view(), name="realtime-broadcast"),
    path("notify/", views.NotifyView.as_view(), name="realtime-notify"),
    path("stats/", views.StatsView.as_view(), name="realtime-stats"),
    path("metrics/", views.MetricsView.as_view(), name="realtime-metrics"),
    path("connections/<str:connection_id>/disconnect/", views.DisconnectView.as_view(), name="realtime-disconnect"),
]
