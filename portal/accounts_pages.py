"""Account pages on the portal blueprint: change one's password, ask for a reset link and use it (the two reset
pages are public), and a company admin's users page (each user's roles and status, deactivation and reactivation,
each confirmed). The flows are tenants.accounts' (shared with the API); these views only adapt forms to them."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from medbill.errors import Conflict, Invalid
from portal.views import _services, bp, db, principal
from tenants import accounts
from tenants.auth import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from tenants.models import User

PASSWORD_HINT = f"At least {MIN_PASSWORD_LENGTH} characters."


def _new_password_fields():
    new = PasswordField(
        "New password",
        validators=[
            DataRequired(message="Enter a new password."),
            Length(min=MIN_PASSWORD_LENGTH, message=f"Use at least {MIN_PASSWORD_LENGTH} characters."),
            Length(max=MAX_PASSWORD_LENGTH, message="The password is too long."),
        ],
        render_kw={"autocomplete": "new-password"},
    )
    again = PasswordField(
        "New password again",
        validators=[DataRequired(message="Enter the new password again."), EqualTo("new_password", "The two differ.")],
        render_kw={"autocomplete": "new-password"},
    )
    return new, again


class PasswordChangeForm(FlaskForm):
    current_password = PasswordField(
        "Current password",
        validators=[DataRequired(message="Enter your current password."), Length(max=MAX_PASSWORD_LENGTH)],
        render_kw={"autocomplete": "current-password"},
    )
    new_password, new_password_again = _new_password_fields()


class ResetRequestForm(FlaskForm):
    email = EmailField(
        "Email",
        validators=[DataRequired(message="Enter your email address."), Length(max=254, message="Email is too long.")],
        render_kw={"autocomplete": "username", "spellcheck": "false", "autocapitalize": "none"},
    )


class ResetForm(FlaskForm):
    token = HiddenField()
    new_password, new_password_again = _new_password_fields()


class ConfirmForm(FlaskForm):
    confirmed = BooleanField("I confirm", validators=[DataRequired(message="Tick the box to confirm.")])


def _apply(form: FlaskForm, exc: Invalid) -> None:
    """A refusal of tenants.accounts shown beside the field it names (or at the top of the form)."""
    for name, messages in exc.errors.items():
        target = getattr(form, name, None)
        if target is not None and not isinstance(target, HiddenField):
            target.errors = [*target.errors, *messages]
        else:
            form.form_errors.append(messages[0][:1].upper() + messages[0][1:] + ".")


def _clear_passwords(form: FlaskForm) -> None:
    for name in ("current_password", "new_password", "new_password_again"):
        if hasattr(form, name):
            getattr(form, name).data = ""


@bp.route("/account/password", methods=["GET", "POST"])
def password_change():
    form = PasswordChangeForm()
    if form.validate_on_submit():
        s = db()
        user = s.get(User, principal().user_id)
        try:
            accounts.change_password(
                s, user, form.current_password.data, form.new_password.data, keep_token_id=g.portal_token_id,
                ip=request.remote_addr, via="portal",
            )  # fmt: skip
        except Invalid as exc:
            s.rollback()
            _apply(form, exc)
        else:
            s.commit()
            flash("Your password was changed. Every other session and API token of yours was ended.", "info")
            return redirect(url_for("portal.home"))
    _clear_passwords(form)
    status = 422 if form.errors or form.form_errors else 200
    return render_template("portal/account_password.html", form=form, hint=PASSWORD_HINT, active=None), status


@bp.route("/password/forgot", methods=["GET", "POST"])
def password_forgot():
    form = ResetRequestForm()
    sent = False
    if form.validate_on_submit():
        s = db()
        st = _services().settings
        accounts.start_password_reset(
            s, _services().dispatcher, email=form.email.data, ip=request.remote_addr, minutes=st.password_reset_minutes
        )
        s.commit()
        sent = True
    status = 422 if form.errors else 200
    minutes = _services().settings.password_reset_minutes
    return render_template("portal/password_forgot.html", form=form, sent=sent, minutes=minutes), status


@bp.route("/password/reset", methods=["GET", "POST"])
def password_reset():
    form = ResetForm()
    if request.method == "GET":
        form.token.data = request.args.get("token", "")
    live = accounts.reset_is_live(db(), form.token.data or "")
    if request.method == "POST" and form.validate_on_submit():
        s = db()
        try:
            accounts.consume_reset(s, form.token.data, form.new_password.data, ip=request.remote_addr, via="portal")
        except Invalid as exc:
            s.rollback()
            _apply(form, exc)
            live = accounts.reset_is_live(s, form.token.data or "")
        else:
            s.commit()
            session.clear()  # whoever was signed in here: that session was revoked with every other
            flash("Your password was changed and you were signed out everywhere. Sign in with the new one.", "info")
            return redirect(url_for("portal.login"))
    _clear_passwords(form)
    if not live:
        return render_template("portal/password_reset.html", form=form, live=False, hint=PASSWORD_HINT), 410
    status = 422 if form.errors or form.form_errors else 200
    return render_template("portal/password_reset.html", form=form, live=True, hint=PASSWORD_HINT), status


@bp.get("/company/users")
def company_users():
    rows = accounts.company_users(db(), principal())
    return render_template(
        "portal/company_users.html", rows=rows, form=ConfirmForm(), me_id=principal().user_id, active="users"
    )


def _change_status(user_id: int, deactivate: bool):
    s = db()
    user = accounts.managed_user(s, principal(), user_id)  # another company's user: 404
    form = ConfirmForm()
    if not form.validate_on_submit():
        flash(f"Nothing changed: tick the box to confirm before you {'deactivate' if deactivate else 'reactivate'}.",
              "error")  # fmt: skip
        return redirect(url_for("portal.company_users"))
    if deactivate:
        try:
            revoked = accounts.deactivate(s, user, actor_id=principal().user_id, ip=request.remote_addr, via="portal")
        except Conflict as exc:  # one's own account
            flash(f"Nothing changed: {exc.message}.", "error")
            return redirect(url_for("portal.company_users"))
        message = f"{user.email} was deactivated; {revoked} session(s) and token(s) ended."
    else:
        accounts.reactivate(s, user, actor_id=principal().user_id, ip=request.remote_addr, via="portal")
        message = f"{user.email} was reactivated and may sign in again."
    s.commit()
    flash(message, "info")
    return redirect(url_for("portal.company_users"))


@bp.post("/company/users/<id:user_id>/deactivate")
def company_user_deactivate(user_id: int):
    return _change_status(user_id, True)


@bp.post("/company/users/<id:user_id>/reactivate")
def company_user_reactivate(user_id: int):
    return _change_status(user_id, False)
