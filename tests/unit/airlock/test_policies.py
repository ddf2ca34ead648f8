"""The airlock's policy: every allowed and refused transition, the rule of two, independence."""

import itertools

import pytest

from lnds_spe.airlock import policies as p
from lnds_spe.airlock.enums import FileKind, RequestStatus, Vote
from lnds_spe.airlock.exceptions import (
    InvalidStateTransition,
    RequestNotReady,
    RequestPermissionDenied,
)
from lnds_spe.airlock.policies import Actor, FileView, RequestView

S = RequestStatus
ALICE = Actor("alice", frozenset({p.SCOPE_REQUEST}), frozenset({"researcher"}))
BOB = Actor("bob", frozenset({p.SCOPE_REQUEST}), frozenset({"researcher"}))
CAROL = Actor("carol", frozenset({p.SCOPE_REVIEW}), frozenset({"output_checker"}))
DAVE = Actor("dave", frozenset({p.SCOPE_REVIEW}), frozenset({"output_checker"}))
ERIN = Actor("erin", frozenset({p.SCOPE_REVIEW}), frozenset({"output_checker"}))
ADMIN = Actor("root", frozenset({p.SCOPE_ADMIN}))


def request(status=S.SUBMITTED, votes=None, reviews=(), files=None, author="alice", round_=1):
    files = files if files is not None else (
        FileView("t.csv", FileKind.OUTPUT, "a" * 64, dict(votes or {})),
        FileView("code.py", FileKind.SUPPORTING, "b" * 64, {}))
    return RequestView("r1", "proj", author, status, round_, tuple(files), frozenset(reviews),
                       frozenset({"alice", "bob"}))


def both_approved(**kwargs):
    return request(votes={"carol": Vote.APPROVE, "dave": Vote.APPROVE}, reviews={"carol", "dave"},
                   **kwargs)


def test_transition_table_is_exactly_the_documented_one():
    allowed = {(a, b) for a, targets in p.VALID_TRANSITIONS.items() for b in targets}
    assert allowed == {(S.DRAFT, S.SUBMITTED), (S.DRAFT, S.WITHDRAWN), (S.SUBMITTED, S.RETURNED),
                       (S.SUBMITTED, S.APPROVED), (S.SUBMITTED, S.REJECTED),
                       (S.SUBMITTED, S.WITHDRAWN), (S.RETURNED, S.SUBMITTED),
                       (S.RETURNED, S.WITHDRAWN), (S.APPROVED, S.RELEASED)}
    for a, b in itertools.product(S, S):
        view = request(status=a)
        if (a, b) in allowed:
            p.check_transition(view, b)
        else:
            with pytest.raises(InvalidStateTransition, match=f"is {a}"):
                p.check_transition(view, b)


def test_only_a_researcher_with_the_scope_creates():
    p.check_can_create(ALICE, "proj", "active")
    with pytest.raises(RequestPermissionDenied, match="not a researcher"):
        p.check_can_create(CAROL.__class__("carol", frozenset({p.SCOPE_REQUEST}),
                                           frozenset({"output_checker"})), "proj", "active")
    with pytest.raises(RequestPermissionDenied, match="lacks the scope custom:airlock:request"):
        p.check_can_create(Actor("alice", frozenset(), frozenset({"researcher"})), "proj", "active")
    with pytest.raises(RequestPermissionDenied, match="closed"):
        p.check_can_create(ALICE, "proj", "closed")


def test_only_the_requester_edits_submits_and_withdraws():
    draft = request(status=S.DRAFT)
    p.check_can_submit(ALICE, draft)
    p.check_can_edit(ALICE, draft)
    for check in (p.check_can_submit, p.check_can_edit, p.check_can_withdraw):
        with pytest.raises(RequestPermissionDenied, match="only the requester"):
            check(BOB, draft)
    with pytest.raises(RequestNotReady, match="no output file"):
        p.check_can_submit(ALICE, request(status=S.DRAFT, files=()))


def test_a_submitted_request_is_frozen_until_returned():
    with pytest.raises(InvalidStateTransition, match="only a draft or returned"):
        p.check_can_edit(ALICE, request(status=S.SUBMITTED))
    p.check_can_edit(ALICE, request(status=S.RETURNED))
    p.check_can_submit(ALICE, request(status=S.RETURNED))  # resubmission
    with pytest.raises(InvalidStateTransition):
        p.check_can_submit(ALICE, request(status=S.SUBMITTED))


def test_withdrawal_before_approval_only():
    for status in (S.DRAFT, S.SUBMITTED, S.RETURNED):
        assert p.can_withdraw(ALICE, request(status=status))
    for status in (S.APPROVED, S.REJECTED, S.RELEASED, S.WITHDRAWN):
        assert not p.can_withdraw(ALICE, request(status=status))


def test_self_review_is_refused_even_for_a_checker():
    author_checker = Actor("carol", frozenset({p.SCOPE_REVIEW, p.SCOPE_REQUEST}),
                           frozenset({"output_checker"}))
    with pytest.raises(RequestPermissionDenied, match="made request r1 and cannot review it"):
        p.check_can_vote(author_checker, request(author="carol"), "t.csv")


def test_a_researcher_of_the_project_cannot_review():
    both_roles = Actor("bob", frozenset({p.SCOPE_REVIEW}), frozenset({"output_checker", "researcher"}))
    with pytest.raises(RequestPermissionDenied, match="researcher of project proj"):
        p.check_can_vote(both_roles, request(), "t.csv")
    # Researcher status comes from the project too, not only from the actor's roles.
    listed = Actor("bob", frozenset({p.SCOPE_REVIEW}), frozenset({"output_checker"}))
    assert not p.can_review(listed, request())


def test_a_checker_must_be_assigned_to_the_project_and_hold_the_scope():
    assert not p.can_review(Actor("erin", frozenset({p.SCOPE_REVIEW})), request())
    assert not p.can_review(Actor("erin", frozenset(), frozenset({"output_checker"})), request())
    assert p.can_review(ERIN, request())


def test_votes_only_on_output_files_of_submitted_requests():
    p.check_can_vote(CAROL, request(), "t.csv")
    with pytest.raises(RequestNotReady, match="supporting file"):
        p.check_can_vote(CAROL, request(), "code.py")
    with pytest.raises(RequestNotReady, match="no file"):
        p.check_can_vote(CAROL, request(), "nope.csv")
    with pytest.raises(InvalidStateTransition, match="only a submitted"):
        p.check_can_vote(CAROL, request(status=S.DRAFT), "t.csv")


def test_a_review_is_submitted_after_voting_on_every_output_and_then_closed():
    with pytest.raises(RequestNotReady, match="not yet voted: t.csv"):
        p.check_can_submit_review(CAROL, request())
    p.check_can_submit_review(CAROL, request(votes={"carol": Vote.APPROVE}))
    with pytest.raises(InvalidStateTransition, match="already submitted"):
        p.check_can_vote(CAROL, request(votes={"carol": Vote.APPROVE}, reviews={"carol"}), "t.csv")


def test_a_single_approval_neither_approves_nor_releases():
    one = request(votes={"carol": Vote.APPROVE}, reviews={"carol"})
    with pytest.raises(RequestNotReady, match="1 of 2 independent reviews"):
        p.check_can_approve(CAROL, one)
    with pytest.raises(RequestNotReady, match="1 of 2"):
        p.check_can_return(CAROL, one)
    approved_one = request(status=S.APPROVED, votes={"carol": Vote.APPROVE}, reviews={"carol"})
    with pytest.raises(RequestNotReady, match="without two approvals"):
        p.check_can_release(CAROL, approved_one)


def test_two_distinct_approvals_approve_and_release():
    p.check_can_approve(DAVE, both_approved())
    p.check_can_release(CAROL, both_approved(status=S.APPROVED))
    p.check_can_release(ADMIN, both_approved(status=S.APPROVED))
    with pytest.raises(RequestPermissionDenied):
        p.check_can_release(ALICE, both_approved(status=S.APPROVED))


def test_a_checker_who_has_not_reviewed_cannot_decide():
    with pytest.raises(RequestNotReady, match="submit your own review"):
        p.check_can_approve(ERIN, both_approved())


def test_votes_of_someone_who_became_a_researcher_do_not_count():
    view = both_approved()
    view = RequestView(view.id, view.project, view.author, view.status, view.round, view.files,
                       view.reviews_submitted, frozenset({"alice", "dave"}))
    assert p.unapproved_outputs(view) == ["t.csv"]
    assert not p.can_approve(CAROL, view)


def test_release_with_an_unapproved_file_is_refused():
    files = (FileView("t.csv", FileKind.OUTPUT, "a" * 64, {"carol": Vote.APPROVE, "dave": Vote.APPROVE}),
             FileView("u.csv", FileKind.OUTPUT, "c" * 64,
                      {"carol": Vote.APPROVE, "dave": Vote.CHANGES_REQUESTED}))
    view = request(status=S.APPROVED, files=files, reviews={"carol", "dave"})
    with pytest.raises(RequestNotReady, match="u.csv"):
        p.check_can_release(CAROL, view)
    with pytest.raises(RequestNotReady, match="not yet: u.csv"):
        p.check_can_approve(CAROL, request(files=files, reviews={"carol", "dave"}))
    p.check_can_return(CAROL, request(files=files, reviews={"carol", "dave"}))
    p.check_can_reject(DAVE, request(files=files, reviews={"carol", "dave"}))


def test_votes_and_comments_are_hidden_until_both_reviews_are_in():
    one = request(votes={"carol": Vote.APPROVE}, reviews={"carol"})
    assert not p.sees_round_of_others(DAVE, one, 1)
    assert not p.sees_round_of_others(CAROL, one, 1)
    assert not p.sees_round_of_others(ALICE, one, 1)
    two = both_approved()
    assert p.sees_round_of_others(DAVE, two, 1)
    assert not p.sees_round_of_others(ALICE, two, 1)  # not yet decided
    assert p.sees_round_of_others(ALICE, both_approved(status=S.RETURNED), 1)
    assert p.sees_round_of_others(ALICE, both_approved(status=S.REJECTED), 1)
    assert p.sees_round_of_others(DAVE, request(round_=2), 1)  # earlier rounds are open


def test_who_sees_a_request_and_its_release():
    assert not p.can_view(CAROL, request(status=S.DRAFT))
    assert p.can_view(CAROL, request())
    assert not p.can_view(BOB, request())
    assert p.can_view(ADMIN, request(status=S.DRAFT))
    released = both_approved(status=S.RELEASED)
    assert p.can_download_release(ALICE, released)
    assert p.can_download_release(ADMIN, released)
    assert not p.can_download_release(CAROL, released)
    with pytest.raises(InvalidStateTransition, match="nothing released"):
        p.check_can_download_release(ALICE, both_approved(status=S.APPROVED))


def test_can_pairs_mirror_their_checks():
    assert p.can_vote.__name__ == "can_vote"
    assert p.can_vote(CAROL, request(), "t.csv") is True
    assert p.can_vote(ALICE, request(), "t.csv") is False


def test_file_contents_are_read_by_checkers_only():
    assert p.can_read_file(CAROL, request())
    assert not p.can_read_file(CAROL, request(status=S.DRAFT))
    with pytest.raises(RequestPermissionDenied, match="only output checkers review"):
        p.check_can_read_file(ALICE, request())  # the requester cannot take it out this way
    assert not p.can_read_file(ADMIN, request())
