"""Words that third-party apps show in our back office and ship no Brazilian Portuguese for (django-axes' login
attempts, django-tasks-db's task results, django-tasks' task states).

They mark them for translation themselves; listing them here puts them in our catalogue
(locale/pt_BR/LC_MESSAGES/django.po), which Django reads before any app's. Never imported: only `makemessages` reads
this file.
"""

from django.utils.translation import gettext_noop as _
from django.utils.translation import pgettext_lazy

AXES = [
    _("Access Attempt"),
    _("Access lock out"),
    _("Attempt Remaining"),
    _("Attempt Time"),
    _("Clean up expired attempts"),
    _("Expires At"),
    _("Failed Logins"),
    _("Form Data"),
    _("GET Data"),
    _("HTTP Accept"),
    _("IP Address"),
    _("Locked Out"),
    _("Logout Time"),
    _("Meta Data"),
    _("Not set"),
    _("POST Data"),
    _("Path"),
    _("Session key hash (sha256)"),
    _("The time when access attempt expires and is no longer valid."),
    _("User Agent"),
    _("Username"),
    _("access attempt"),
    _("access attempts"),
    _("access attempt expiration"),
    _("access attempt expirations"),
    _("access failure"),
    _("access failures"),
    _("access log"),
    _("access logs"),
]

TASKS = [
    _("Task Result"),
    _("Task Results"),
    _("args kwargs"),
    _("backend name"),
    _("enqueued at"),
    _("exception class path"),
    _("finished at"),
    _("priority"),
    _("queue name"),
    _("return value"),
    _("run after"),
    _("started at"),
    _("status"),
    _("task path"),
    _("traceback"),
    _("worker id"),
    pgettext_lazy("Task", "Ready"),
    pgettext_lazy("Task", "Running"),
    pgettext_lazy("Task", "Failed"),
    pgettext_lazy("Task", "Successful"),
]
