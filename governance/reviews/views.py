"""Review board pages: the queue, one review (and deciding on it), opening a review,
and the policies."""

from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from governance.models import ModelVersion
from governance.reviews.checks import checks_evaluate
from governance.reviews.choices import OPEN_STATES, ReviewSource, ReviewState, Verdict
from governance.reviews.evidence import VERSION_EVIDENCE_PACK
from governance.reviews.forms import (
    DecisionForm,
    PolicyForm,
    PolicyOverrideForm,
    QueueFilterForm,
    ReviewOpenForm,
    WithdrawForm,
)
from governance.reviews.models import Review, ReviewDecision, ReviewPolicy
from governance.reviews.permissions import (
    may_decide,
    may_manage_policies,
    may_open_reviews,
    may_read_reviews,
)
from governance.reviews.selectors import (
    QUEUE_TABS,
    decision_roles_for,
    policies_list,
    review_decisions,
    review_get,
    review_progress,
    review_summary,
    reviews_queue,
    reviews_queue_counts,
)
from governance.reviews.services import (
    DecisionRefused,
    policy_override_create,
    policy_override_delete,
    policy_update,
    review_decide,
    review_open,
    review_recheck,
)
from governance.selectors.baselines import production_comparison
from governance.selectors.cards import (
    card_diff,
    card_missing_sections,
    card_revisions,
    card_sections,
)
from governance.selectors.registry import metrics_compare
from portal.accounts.choices import BOARD_ROLES
from portal.accounts.permissions import may_read_audit, user_passes
from portal.accounts.selectors import role_held_since
from portal.audit.actors import client_ip_for_request
from portal.audit.selectors import (
    audit_actor_ref_name,
    audit_events_for_object,
    audit_events_named,
)
from portal.exports.services import export_job_request
from portal.security.middleware import refusal_note

PAGE_SIZE = 25


@user_passes(may_read_reviews)
def review_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    default_tab = "waiting" if user.board_roles else "others"
    tab = request.GET.get("tab") or default_tab
    if tab not in QUEUE_TABS:
        tab = default_tab
    filters = QueueFilterForm(request.GET or None)
    chosen = filters.cleaned_data if filters.is_valid() else {}
    reviews = reviews_queue(
        user=user,
        tab=tab,
        target=chosen.get("target", ""),
        model=chosen.get("model", ""),
        state=chosen.get("state", ""),
    )
    counts = reviews_queue_counts(user=user)
    page = Paginator(reviews, PAGE_SIZE).get_page(request.GET.get("page"))
    query = urlencode([(name, value) for name, value in [("tab", tab), *chosen.items()] if value])
    return render(
        request,
        "reviews/review_list.html",
        {
            "tab": tab,
            "tabs": [
                (key, label, counts[key])
                for key, label in (
                    ("waiting", "Waiting for you"),
                    ("others", "Waiting for others"),
                    ("decided", "Decided"),
                )
            ],
            "page": page,
            "filters": filters,
            "query": query,
            "may_open": may_open_reviews(user),
            "may_manage": may_manage_policies(user),
        },
    )


def _mark_role_age(decisions: Iterable[ReviewDecision]) -> None:
    """Say on each decision since when its reviewer held the role they decided with;
    a role granted shortly before the decision is flagged for the board to see."""
    since = role_held_since(holdings=[(d.reviewer_id, d.role, d.decided_at) for d in decisions])
    fresh = timedelta(hours=settings.GOVERNANCE_FRESH_ROLE_HOURS)
    for decision in decisions:
        decision.role_since = since[(decision.reviewer_id, decision.role, decision.decided_at)]
        decision.role_fresh = (
            decision.role_since is not None and decision.decided_at - decision.role_since < fresh
        )


def _detail_context(request: HttpRequest, review: Review) -> dict:
    version = review.version
    card = getattr(version, "card", None)
    compared = production_comparison(version=version)
    baseline = compared.production if compared else None
    decisions = review_decisions(review=review)
    _mark_role_age(decisions)
    if review.state in OPEN_STATES:
        checks = [
            c.as_dict()
            for c in checks_evaluate(
                version=version, target=review.target, snapshot=review.policy_snapshot
            )
        ]
    else:
        checks = review.checks
    progress = review_progress(review=review, decisions=decisions)
    user = request.user
    mine = next((d for d in decisions if d.reviewer_id == user.pk and d.active), None)
    diffs = card_diff(old_card=baseline.card, new_card=card) if baseline and card else []
    # Board members see who acted by name, as they see each other's decisions.
    events = audit_events_named(
        audit_events_for_object(object_type="review", object_id=str(review.pk))[:50]
    )
    # What changed since the decisions that no longer count were made: the card's
    # revisions after the earliest of them (a reviewer sees what to read again).
    stale = [d for d in decisions if d.stale_at]
    stale_since = min(d.decided_at for d in stale) if stale else None
    revisions_since = (
        list(card_revisions(card=card).filter(created_at__gte=stale_since)[:20])
        if card and stale_since
        else []
    )
    return {
        "stale_decisions": stale,
        "stale_since": stale_since,
        "revisions_since": revisions_since,
        "review": review,
        "version": version,
        "model": version.model,
        "card": card,
        "sections": card_sections(card=card) if card else [],
        "missing": card_missing_sections(card=card) if card else [],
        "baseline": baseline,
        "comparison": metrics_compare(
            version=version,
            baseline=baseline,
            baseline_metrics=compared.metrics if compared else None,
        ),
        "compared": compared,
        "diffs": diffs,
        "checks": checks,
        "decisions": decisions,
        "progress": progress,
        "summary": review_summary(review=review, progress=progress, checks=checks),
        "may_recheck": may_decide(user) or may_open_reviews(user),
        "my_decision": mine,
        "may_decide": may_decide(user) and review.state in OPEN_STATES and mine is None,
        "may_withdraw": mine is not None
        and mine.verdict in (Verdict.APPROVE, Verdict.REQUEST_CHANGES),
        "registered_by_name": audit_actor_ref_name(version.registered_by)
        if version.registered_by
        else "",
        "changed_sections": sum(1 for diff in diffs if diff.status != "unchanged"),
        "events": events,
    }


@user_passes(may_read_reviews)
def review_detail(request: HttpRequest, pk: int) -> HttpResponse:
    review = review_get(pk=pk)
    context = _detail_context(request, review)
    context["form"] = DecisionForm(roles=decision_roles_for(review=review, user=request.user))
    context["withdraw_form"] = WithdrawForm()
    return render(request, "reviews/review_detail.html", context)


@require_POST
@user_passes(may_decide)
def review_decide_view(request: HttpRequest, pk: int) -> HttpResponse:
    review = review_get(pk=pk)
    roles = decision_roles_for(review=review, user=request.user)
    withdrawing = request.POST.get("verdict") == Verdict.WITHDRAW
    # Any board role passes the form, so that deciding in a role one does not hold is
    # refused by the service's rule (a 403, recorded as a security event), not as a
    # malformed form.
    form = (
        WithdrawForm(request.POST)
        if withdrawing
        else DecisionForm(request.POST, roles=sorted(BOARD_ROLES))
    )
    status, conflict = 400, ""
    if form.is_valid():
        try:
            outcome = review_decide(
                review=review,
                reviewer=request.user,
                verdict=Verdict.WITHDRAW if withdrawing else form.cleaned_data["verdict"],
                role="" if withdrawing else form.cleaned_data["role"],
                comment=form.cleaned_data["comment"],
                client_ip=client_ip_for_request(request),
            )
        except DecisionRefused as refused:
            if refused.is_state_conflict:
                # The review has closed (or expired): a conflict with its state, shown
                # where the decision was asked for, not a refusal of the person.
                status, conflict = 409, refused.message
            else:
                refusal_note(request, code=refused.code, reason=refused.message)
                messages.error(request, refused.message)
                status = 403
        except ValidationError as error:
            for field, errors in error.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            label = outcome.review.get_state_display().lower()
            messages.success(request, f"Your decision is recorded. The review is {label}.")
            return redirect("governance:review_detail", pk=review.pk)
    context = _detail_context(request, review_get(pk=pk))
    context["conflict"] = conflict
    if withdrawing:
        context.update(form=DecisionForm(roles=roles), withdraw_form=form)
    else:
        form.fields["role"].choices = DecisionForm(roles=roles).fields["role"].choices
        context.update(form=form, withdraw_form=WithdrawForm())
    return render(request, "reviews/review_detail.html", context, status=status)


@require_POST
@user_passes(lambda user: may_decide(user) or may_open_reviews(user))
def review_recheck_view(request: HttpRequest, pk: int) -> HttpResponse:
    outcome = review_recheck(
        review=review_get(pk=pk),
        actor=request.user.audit_actor(),
        client_ip=client_ip_for_request(request),
    )
    label = outcome.review.get_state_display().lower()
    if outcome.previous_state != ReviewState.PENDING:
        # Only a waiting review's checks are evaluated again (review_recheck).
        messages.warning(
            request,
            f"The review is {label}: its checks were not evaluated again, they stay as "
            "they were when it was decided.",
        )
        return redirect("governance:review_detail", pk=pk)
    failed = len(outcome.review.failed_checks)
    messages.success(request, f"Checks evaluated again: {failed} failing. The review is {label}.")
    return redirect("governance:review_detail", pk=pk)


@user_passes(may_open_reviews)
def review_open_view(request: HttpRequest) -> HttpResponse:
    initial = {k: request.GET[k] for k in ("version", "target") if k in request.GET}
    form = ReviewOpenForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            review, created = review_open(
                version=form.cleaned_data["version"],
                target=form.cleaned_data["target"],
                requested_by_actor=request.user.audit_actor(),
                source=ReviewSource.UI,
                client_ip=client_ip_for_request(request),
            )
        except ValidationError as error:
            for field, errors in error.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            if created:
                messages.success(request, "The review is open; the board has been asked.")
            else:
                messages.info(request, "This version already has a review for that target.")
            return redirect("governance:review_detail", pk=review.pk)
    return render(request, "reviews/review_open.html", {"form": form})


@user_passes(may_manage_policies)
def policy_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "reviews/policy_list.html",
        {"policies": policies_list(), "override_form": PolicyOverrideForm()},
    )


@user_passes(may_manage_policies)
def policy_edit(request: HttpRequest, pk: int) -> HttpResponse:
    policy = get_object_or_404(ReviewPolicy.objects.select_related("model"), pk=pk)
    form = PolicyForm(request.POST or None, initial=PolicyForm.initial_for(policy))
    if request.method == "POST" and form.is_valid():
        try:
            outcome = policy_update(
                policy=policy,
                data=form.policy_data(),
                actor=request.user.audit_actor(),
                client_ip=client_ip_for_request(request),
            )
        except ValidationError as error:
            for field, errors in error.message_dict.items():
                name = field.split(".")[0]
                form.add_error(name if name in form.fields else None, errors)
        else:
            if isinstance(outcome, ReviewPolicy):
                messages.success(request, f"Policy {policy} saved. Open reviews keep their rules.")
            else:
                messages.success(
                    request,
                    f"Proposed: {outcome.summary}. It applies when another portal admin approves.",
                )
            return redirect("governance:policy_list")
    return render(request, "reviews/policy_edit.html", {"policy": policy, "form": form})


@require_POST
@user_passes(may_manage_policies)
def policy_override_create_view(request: HttpRequest) -> HttpResponse:
    form = PolicyOverrideForm(request.POST)
    if form.is_valid():
        try:
            policy = policy_override_create(
                model=form.cleaned_data["model"],
                target=form.cleaned_data["target"],
                actor=request.user.audit_actor(),
                client_ip=client_ip_for_request(request),
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"{policy} now has its own policy; adjust it here.")
            return redirect("governance:policy_edit", pk=policy.pk)
    else:
        messages.error(request, "Choose a model and a target.")
    return redirect("governance:policy_list")


@user_passes(may_manage_policies)
def policy_override_delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    policy = get_object_or_404(ReviewPolicy.objects.select_related("model"), pk=pk)
    if request.method == "POST":
        try:
            proposed = policy_override_delete(
                policy=policy,
                actor=request.user.audit_actor(),
                client_ip=client_ip_for_request(request),
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            if proposed is None:
                messages.success(request, f"Removed {policy}; the target's default applies again.")
            else:
                messages.success(
                    request,
                    f"Proposed: {proposed.summary}. It applies when another portal admin approves.",
                )
        return redirect(reverse("governance:policy_list"))
    return render(request, "reviews/policy_delete.html", {"policy": policy})


@user_passes(may_read_audit)
@require_POST
def version_evidence_pack_view(request: HttpRequest, model: str, version: str) -> HttpResponse:
    """Ask for a version's evidence pack as PDF: a worker prints it as an export job."""
    found = get_object_or_404(
        ModelVersion.objects.select_related("model"), model__slug=model, version=version
    )
    job = export_job_request(
        kind=VERSION_EVIDENCE_PACK,
        params={"version_id": found.pk},
        title=f"Evidence pack {found.model.slug} {found.version}",
        requested_by=request.user,
        client_ip=client_ip_for_request(request),
    )
    return redirect("exports:job_detail", pk=job.pk)
