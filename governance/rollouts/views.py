"""Rollout pages: the list, one rollout (steps, weights, analysis charts, decisions),
starting one, a person's decisions (promote, pause, abort, roll back), and the canary
thresholds of each target."""

from collections.abc import Callable

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from governance.choices import Target
from governance.models import ModelVersion, RegisteredModel
from governance.rollouts.choices import ACTIVE_ROLLOUT_STATES, RolloutState
from governance.rollouts.forms import (
    CanaryPolicyForm,
    RolloutDecisionForm,
    RolloutFilterForm,
    RolloutStartForm,
)
from governance.rollouts.models import CANARY_THRESHOLD_FIELDS, Rollout
from governance.rollouts.permissions import (
    may_operate_rollouts,
    may_read_rollouts,
    may_set_canary_thresholds,
)
from governance.rollouts.policies import canary_policy_update
from governance.rollouts.selectors import (
    canary_policies,
    canary_policy_for,
    rollout_chart,
    rollout_get,
    rollout_timeline,
    rollouts_list,
)
from governance.rollouts.services import (
    RolloutRefused,
    rollout_abort,
    rollout_pause,
    rollout_promote,
    rollout_rollback,
    rollout_start,
)
from portal.accounts.permissions import user_passes
from portal.audit.actors import client_ip_for_request
from portal.security.middleware import refusal_note

PAGE_SIZE = 25


def _refused(request: HttpRequest, refused: RolloutRefused) -> None:
    """A refusal the service recorded itself (portal.security): turn a forbidden one
    into the 403 page without the middleware counting it a second time."""
    if refused.code == "forbidden":
        request.refusals_recorded_by_view = True  # type: ignore[attr-defined]
        refusal_note(request, code="rollout_forbidden", reason=refused.message_text)
        raise PermissionDenied(refused.message_text)


@user_passes(may_read_rollouts)
def rollout_list(request: HttpRequest) -> HttpResponse:
    models = list(RegisteredModel.objects.order_by("slug"))
    filters = RolloutFilterForm(request.GET or None, models=models)
    chosen = filters.cleaned_data if filters.is_valid() else {}
    rollouts = rollouts_list(
        model=chosen.get("model", ""),
        target=chosen.get("target", ""),
        state=chosen.get("state", ""),
    )
    page = Paginator(rollouts, PAGE_SIZE).get_page(request.GET.get("page"))
    may_operate = may_operate_rollouts(request.user)
    return render(
        request,
        "rollouts/rollout_list.html",
        {
            "page": page,
            "filters": filters,
            "query": urlencode([(k, v) for k, v in chosen.items() if v]),
            "start_form": RolloutStartForm(models=models) if may_operate else None,
            "may_set_thresholds": may_set_canary_thresholds(request.user),
        },
        status=400 if filters.errors else 200,
    )


@require_POST
@user_passes(may_read_rollouts)
def rollout_start_view(request: HttpRequest) -> HttpResponse:
    """Start a rollout from the portal: the same service (and gate) as the API. Another
    active rollout of the model to the target is a 409."""
    models = list(RegisteredModel.objects.order_by("slug"))
    form = RolloutStartForm(request.POST, models=models)
    status = 400
    if form.is_valid():
        data = form.cleaned_data
        version = (
            ModelVersion.objects.select_related("model")
            .filter(model__slug=data["model"], version=data["version"])
            .first()
        )
        if version is None:
            form.add_error("version", f"{data['model']} has no version {data['version']!r}.")
        else:
            try:
                rollout = rollout_start(
                    version=version,
                    target=data["target"],
                    actor=request.user.audit_actor(),
                    allowed=may_operate_rollouts(request.user),
                    client_ip=client_ip_for_request(request),
                )
            except RolloutRefused as refused:
                _refused(request, refused)
                form.add_error("version", refused.message_text)
                status = 409 if refused.is_state_conflict else 400
            else:
                messages.success(request, f"Rollout #{rollout.pk} started; a worker drives it.")
                return redirect("governance:rollout_detail", pk=rollout.pk)
    messages.error(request, "Nothing started: correct the form below.")
    filters = RolloutFilterForm(models=models)
    page = Paginator(rollouts_list(), PAGE_SIZE).get_page(1)
    return render(
        request,
        "rollouts/rollout_list.html",
        {
            "page": page,
            "filters": filters,
            "query": "",
            "start_form": form,
            "may_set_thresholds": may_set_canary_thresholds(request.user),
        },
        status=status,
    )


def _detail_context(request: HttpRequest, pk: int) -> dict:
    rollout = rollout_get(pk=pk)
    steps = list(rollout.step_records.all())
    may_operate = may_operate_rollouts(request.user)
    return {
        "rollout": rollout,
        "steps": steps,
        "pending_steps": [
            {"index": i, "weight": w} for i, w in enumerate(rollout.steps) if i >= len(steps)
        ],
        "stable_weight": 0 if rollout.state == RolloutState.SUCCEEDED else 100 - rollout.weight,
        "chart": rollout_chart(rollout=rollout),
        "timeline": rollout_timeline(rollout=rollout),
        "actions": _actions(rollout) if may_operate else [],
        "decision_form": RolloutDecisionForm(),
        "polling": rollout.state in ACTIVE_ROLLOUT_STATES or not rollout.synced,
    }


def _actions(rollout: Rollout) -> list[dict[str, str]]:
    """The decisions a person may take on the rollout in its state, with their
    confirmation questions."""
    subject = f"{rollout.model.slug} {rollout.version.version} on {rollout.target}"
    found = []
    if rollout.state == RolloutState.PAUSED:
        nxt = rollout.step_index + 1
        where = f"to {rollout.steps[nxt]}%" if nxt < len(rollout.steps) else "to all traffic"
        found.append(
            {"verb": "promote", "label": "Promote", "confirm": f"Promote {subject} {where}?"}
        )
    if rollout.state in (RolloutState.PENDING, RolloutState.PROGRESSING):
        found.append(
            {"verb": "pause", "label": "Pause", "confirm": f"Hold {subject} at {rollout.weight}%?"}
        )
    if rollout.state in ACTIVE_ROLLOUT_STATES:
        found.append(
            {
                "verb": "abort",
                "label": "Abort",
                "confirm": f"Abort {subject}? All traffic goes back to the stable version.",
            }
        )
        found.append(
            {
                "verb": "rollback",
                "label": "Roll back",
                "confirm": f"Roll back {subject}? All traffic goes back to "
                f"{rollout.stable_version.version} and an incident is opened.",
            }
        )
    return found


@user_passes(may_read_rollouts)
def rollout_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "rollouts/rollout_detail.html", _detail_context(request, pk))


@user_passes(may_read_rollouts)
def rollout_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The steps, weights and decisions, polled by htmx while the rollout is active."""
    return render(request, "rollouts/includes/rollout_progress.html", _detail_context(request, pk))


_DECISIONS: dict[str, tuple[Callable[..., Rollout], str, bool]] = {
    "promote": (rollout_promote, "promoted", False),
    "pause": (rollout_pause, "paused", False),
    "abort": (rollout_abort, "aborted", True),
    "rollback": (rollout_rollback, "rolled back", True),
}


@require_POST
@user_passes(may_read_rollouts)
def rollout_decide(request: HttpRequest, pk: int, verb: str) -> HttpResponse:
    """A person's decision on a rollout (DevOps and portal admins; refused and recorded
    for anyone else). Answers htmx with a client redirect to the rollout's page; a
    decision the rollout's state no longer allows (promoting a finished rollout, pausing
    a paused one) is a 409 with the rollout's page saying why."""
    if verb not in _DECISIONS:
        raise Http404(f"No decision {verb!r}.")
    service, done, takes_reason = _DECISIONS[verb]
    rollout = rollout_get(pk=pk)
    form = RolloutDecisionForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    extra = {"reason": reason} if takes_reason and reason else {}
    try:
        service(
            rollout=rollout,
            actor=request.user.audit_actor(),
            allowed=may_operate_rollouts(request.user),
            client_ip=client_ip_for_request(request),
            **extra,
        )
    except RolloutRefused as refused:
        _refused(request, refused)
        if refused.is_state_conflict:
            context = {**_detail_context(request, pk), "conflict": refused.message_text}
            return render(request, "rollouts/rollout_detail.html", context, status=409)
        messages.error(request, refused.message_text)
    else:
        messages.success(request, f"Rollout #{rollout.pk} {done}.")
    url = reverse("governance:rollout_detail", args=[rollout.pk])
    if getattr(request, "htmx", False):
        return HttpResponseClientRedirect(url)
    return HttpResponseRedirect(url)


@user_passes(may_read_rollouts)
def canary_policy_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "rollouts/canary_policy_list.html",
        {
            "policies": canary_policies(),
            "fields": CANARY_THRESHOLD_FIELDS,
            "may_set_thresholds": may_set_canary_thresholds(request.user),
        },
    )


@user_passes(may_set_canary_thresholds)
def canary_policy_edit(request: HttpRequest, target: str) -> HttpResponse:
    if target not in Target.values:
        raise Http404(f"No target {target!r}.")
    policy = canary_policy_for(target=target)
    initial = {name: getattr(policy, name) for name in CANARY_THRESHOLD_FIELDS}
    form = CanaryPolicyForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            canary_policy_update(
                target=target,
                thresholds=form.cleaned_data,
                actor=request.user.audit_actor(),
                client_ip=client_ip_for_request(request),
            )
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                form.add_error(field if field in form.fields else None, problems)
        else:
            messages.success(request, f"Canary thresholds for {target} saved.")
            return redirect("governance:canary_policy_list")
    return render(
        request,
        "rollouts/canary_policy_edit.html",
        {"target": target, "target_label": Target(target).label, "form": form, "policy": policy},
        status=400 if request.method == "POST" else 200,
    )
