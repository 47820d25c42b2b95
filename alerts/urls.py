from django.urls import path

from alerts import views

urlpatterns = [
    path("alerts/", views.alert_list, name="alert-list"),
    path("alerts/<int:incident_id>/acknowledge/", views.acknowledge, name="alert-acknowledge"),
]
