from django.urls import path

from pages import events, exports, views

urlpatterns = [
    path("attempts/", views.attempt_list, name="attempt-list"),
    path("attempts/poll/", views.attempt_poll, name="attempt-poll"),
    path("attempts/track/", views.attempt_track, name="attempt-track"),
    # Before any attempts/<id>/ route: "export.csv" is not an attempt id.
    path("attempts/export.csv", exports.attempts_csv, name="attempt-export"),
    path("events/", events.event_list, name="event-list"),
    path("events/export.csv", exports.events_csv, name="event-export"),
    # Last: any other attempts/<...>/ is an attempt id.
    path("attempts/<str:action_attempt_id>/", views.attempt_detail, name="attempt-detail"),
    path(
        "attempts/<str:action_attempt_id>/refresh/",
        views.attempt_refresh,
        name="attempt-refresh",
    ),
]
