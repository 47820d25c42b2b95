from django.urls import path

from attempts import views

urlpatterns = [
    path("attempts/", views.attempt_list, name="attempt-list"),
]
