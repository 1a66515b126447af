//! Every mail the server sends, in Korean and English.
//!
//! The templates live in `crates/mailer/templates/` (one `.txt` and one
//! `.html` file per template per locale, HTML pages extending `layout.html`)
//! and are compiled into the binary with `include_str!`, so a deployment is a
//! single file and a broken template fails the tests, not a signup at 3 am.
//! HTML templates are auto-escaped (organization and company names come from
//! users); text templates and subjects are not, since they are not HTML.

use std::fmt;
use std::sync::LazyLock;

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value, context};
use storage::models::OutboxRow;

use crate::error::MailError;
use crate::locale::Locale;

/// A mail and the values it needs.
#[derive(Clone, PartialEq, Eq)]
pub enum Template {
    /// The code that proves a new user owns their email address (signup).
    VerificationCode {
        code: String,
        minutes: i64,
    },
    /// The code that proves the user receives mail at an address of
    /// `organization`'s domain, i.e. belongs to it.
    OrganizationEmailCode {
        code: String,
        organization: String,
        minutes: i64,
    },
    PasswordReset {
        code: String,
        link: String,
        minutes: i64,
    },
    /// Sent instead of a code when someone signs up with an address that
    /// already has an account: the signup form answers the same either way, so
    /// it does not reveal which addresses are registered, and the owner learns
    /// about the attempt.
    SignupAttemptExisting {
        login_link: String,
        reset_link: String,
    },
    /// A company account created for the recipient; the link sets its password.
    ActivationLink {
        link: String,
        organization: String,
        hours: i64,
    },
    /// To operators: a company asked to be registered.
    RegistrationReceived {
        company: String,
        contact_name: String,
        contact_email: String,
        contact_phone: String,
    },
    RegistrationRejected {
        company: String,
        reason: String,
    },
}

/// Names of all templates, as stored in `outbox.template` and used for the
/// file names under `templates/`.
pub const TEMPLATE_NAMES: [&str; 7] = [
    "verification_code",
    "organization_email_code",
    "password_reset",
    "signup_attempt_existing",
    "activation_link",
    "registration_received",
    "registration_rejected",
];

impl Template {
    pub fn name(&self) -> &'static str {
        match self {
            Template::VerificationCode { .. } => "verification_code",
            Template::OrganizationEmailCode { .. } => "organization_email_code",
            Template::PasswordReset { .. } => "password_reset",
            Template::SignupAttemptExisting { .. } => "signup_attempt_existing",
            Template::ActivationLink { .. } => "activation_link",
            Template::RegistrationReceived { .. } => "registration_received",
            Template::RegistrationRejected { .. } => "registration_rejected",
        }
    }

    fn context(&self) -> Value {
        match self {
            Template::VerificationCode { code, minutes } => context! {
                code => code.as_str(),
                minutes => *minutes,
            },
            Template::OrganizationEmailCode {
                code,
                organization,
                minutes,
            } => context! {
                code => code.as_str(),
                organization => organization.as_str(),
                minutes => *minutes,
            },
            Template::PasswordReset {
                code,
                link,
                minutes,
            } => context! {
                code => code.as_str(),
                link => link.as_str(),
                minutes => *minutes,
            },
            Template::SignupAttemptExisting {
                login_link,
                reset_link,
            } => context! {
                login_link => login_link.as_str(),
                reset_link => reset_link.as_str(),
            },
            Template::ActivationLink {
                link,
                organization,
                hours,
            } => context! {
                link => link.as_str(),
                organization => organization.as_str(),
                hours => *hours,
            },
            Template::RegistrationReceived {
                company,
                contact_name,
                contact_email,
                contact_phone,
            } => context! {
                company => company.as_str(),
                contact_name => contact_name.as_str(),
                contact_email => contact_email.as_str(),
                contact_phone => contact_phone.as_str(),
            },
            Template::RegistrationRejected { company, reason } => context! {
                company => company.as_str(),
                reason => reason.as_str(),
            },
        }
    }
}

/// Only the template name: the fields hold codes and single-use links, which
/// must not end up in logs.
impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

/// A mail ready to send.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedMail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Only the subject: the bodies may carry codes.
impl fmt::Debug for RenderedMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenderedMail")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// `(locale/name.ext, source)` for every body template.
macro_rules! bodies {
    ($($name:literal),* $(,)?) => {
        &[$(
            (concat!("ko/", $name, ".txt"), include_str!(concat!("../templates/ko/", $name, ".txt"))),
            (concat!("ko/", $name, ".html"), include_str!(concat!("../templates/ko/", $name, ".html"))),
            (concat!("en/", $name, ".txt"), include_str!(concat!("../templates/en/", $name, ".txt"))),
            (concat!("en/", $name, ".html"), include_str!(concat!("../templates/en/", $name, ".html"))),
        )*]
    };
}

const BODIES: &[(&str, &str)] = bodies!(
    "verification_code",
    "organization_email_code",
    "password_reset",
    "signup_attempt_existing",
    "activation_link",
    "registration_received",
    "registration_rejected",
);

const LAYOUT: &str = include_str!("../templates/layout.html");

/// `(name, Korean, English)` subject lines. Short enough to keep beside the
/// code rather than in 14 one-line files.
const SUBJECTS: &[(&str, &str, &str)] = &[
    (
        "verification_code",
        "이메일 인증 코드 안내",
        "Your email verification code",
    ),
    (
        "organization_email_code",
        "{{ organization }} 소속 확인을 위한 인증 코드",
        "Confirm your email address for {{ organization }}",
    ),
    (
        "password_reset",
        "비밀번호 재설정 안내",
        "Reset your password",
    ),
    (
        "signup_attempt_existing",
        "이미 가입된 이메일 주소로 회원가입 시도가 있었습니다",
        "Someone tried to sign up with your email address",
    ),
    (
        "activation_link",
        "{{ organization }} 계정 활성화 안내",
        "Activate your {{ organization }} account",
    ),
    (
        "registration_received",
        "새 기업 등록 신청: {{ company }}",
        "New company registration: {{ company }}",
    ),
    (
        "registration_rejected",
        "{{ company }} 기업 등록 신청 결과 안내",
        "Your registration of {{ company }}",
    ),
];

/// Compiled once. A syntax error is kept as the error of every render rather
/// than a panic: the tests render every template, so it never ships.
static ENV: LazyLock<Result<Environment<'static>, String>> = LazyLock::new(build_env);

fn build_env() -> Result<Environment<'static>, String> {
    let mut env = Environment::new();
    // A misspelt variable must fail the tests, not mail an empty code.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // The default callback escapes `*.html` only: bodies in `.txt` and
    // subjects (`.subject`) are plain text.
    // minijinja's HTML escaping also turns `/` into `&#x2f;`, which is valid
    // but makes every link in a mail's source unreadable (and breaks naive
    // link extraction in tests and mail clients' text fallbacks). Escaping
    // `& < > " '` is what HTML needs, in text and in quoted attributes.
    env.set_formatter(|out, state, value| match value.as_str() {
        Some(s) if matches!(state.auto_escape(), AutoEscape::Html) && !value.is_safe() => out
            .write_str(&escape_html(s))
            .map_err(|e| minijinja::Error::new(ErrorKind::WriteFailure, e.to_string())),
        _ => minijinja::escape_formatter(out, state, value),
    });
    env.add_template("layout.html", LAYOUT)
        .map_err(|e| format!("layout.html: {e}"))?;
    for (name, source) in BODIES {
        env.add_template(name, source)
            .map_err(|e| format!("{name}: {e}"))?;
    }
    for (name, ko, en) in SUBJECTS {
        for (locale, source) in [(Locale::Ko, ko), (Locale::En, en)] {
            let full = format!("{locale}/{name}.subject");
            env.add_template_owned(full.clone(), *source)
                .map_err(|e| format!("{full}: {e}"))?;
        }
    }
    Ok(env)
}

fn escape_html(s: &str) -> String {
    let mut escaped = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn render_one(env: &Environment<'_>, name: &str, ctx: &Value) -> Result<String, MailError> {
    env.get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| MailError::Template(format!("{name}: {e}")))
}

/// A header line can't hold line breaks (they would start a new header), and
/// names typed by users may contain them.
pub(crate) fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Renders the subject, text body and HTML body of a mail.
pub fn render(template: &Template, locale: Locale) -> Result<RenderedMail, MailError> {
    let env = ENV.as_ref().map_err(|e| MailError::Template(e.clone()))?;
    let base = format!("{locale}/{}", template.name());
    let ctx = template.context();
    let subject = one_line(&render_one(env, &format!("{base}.subject"), &ctx)?);
    let text = render_one(env, &format!("{base}.txt"), &ctx)?;
    // The layout puts the subject in the page <title>.
    let html_ctx = context! { subject => subject.as_str(), ..ctx };
    let html = render_one(env, &format!("{base}.html"), &html_ctx)?;
    Ok(RenderedMail {
        subject,
        text,
        html,
    })
}

/// A pending outbox row for this mail (id = new uuid v4, status pending,
/// attempts 0, next_attempt_at = created_at = now). Insert it with
/// `storage::repo::outbox::insert` in the transaction that causes the mail.
///
/// The recipient is checked here, so a malformed address is refused while the
/// caller can still report it instead of dying in the queue.
pub fn outbox_row(
    recipient: &str,
    template: &Template,
    locale: Locale,
) -> Result<OutboxRow, MailError> {
    let recipient = recipient.trim();
    crate::transport::check_recipient(recipient)?;
    let mail = render(template, locale)?;
    let now = crate::outbox::now();
    Ok(OutboxRow {
        id: uuid::Uuid::new_v4().to_string(),
        recipient: recipient.to_owned(),
        subject: mail.subject,
        text_body: mail.text,
        html_body: mail.html,
        template: template.name().to_owned(),
        status: storage::repo::outbox::PENDING.to_owned(),
        attempts: 0,
        next_attempt_at: now,
        last_error: None,
        created_at: now,
        sent_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of each, with the values the tests look for in the output.
    fn all_templates(org: &str) -> Vec<(Template, Vec<&'static str>)> {
        vec![
            (
                Template::VerificationCode {
                    code: "482913".into(),
                    minutes: 10,
                },
                vec!["482913", "10"],
            ),
            (
                Template::OrganizationEmailCode {
                    code: "551200".into(),
                    organization: org.into(),
                    minutes: 15,
                },
                vec!["551200", "15"],
            ),
            (
                Template::PasswordReset {
                    code: "730155".into(),
                    link: "https://auth.example.com/reset?token=abc123".into(),
                    minutes: 30,
                },
                vec!["730155", "https://auth.example.com/reset?token=abc123"],
            ),
            (
                Template::SignupAttemptExisting {
                    login_link: "https://auth.example.com/login".into(),
                    reset_link: "https://auth.example.com/forgot".into(),
                },
                vec![
                    "https://auth.example.com/login",
                    "https://auth.example.com/forgot",
                ],
            ),
            (
                Template::ActivationLink {
                    link: "https://auth.example.com/activate/tok-9f8e".into(),
                    organization: org.into(),
                    hours: 72,
                },
                vec!["https://auth.example.com/activate/tok-9f8e", "72"],
            ),
            (
                Template::RegistrationReceived {
                    company: org.into(),
                    contact_name: "홍길동".into(),
                    contact_email: "gildong@example.co.kr".into(),
                    contact_phone: "010-1234-5678".into(),
                },
                vec!["홍길동", "gildong@example.co.kr", "010-1234-5678"],
            ),
            (
                Template::RegistrationRejected {
                    company: org.into(),
                    reason: "사업자등록증 사본이 확인되지 않았습니다".into(),
                },
                vec!["사업자등록증 사본이 확인되지 않았습니다"],
            ),
        ]
    }

    #[test]
    fn every_template_renders_in_every_locale() {
        let templates = all_templates("한빛상사");
        assert_eq!(templates.len(), TEMPLATE_NAMES.len());
        for (template, needles) in &templates {
            assert!(TEMPLATE_NAMES.contains(&template.name()));
            for locale in Locale::ALL {
                let mail = render(template, locale)
                    .unwrap_or_else(|e| panic!("{template:?} {locale}: {e}"));
                assert!(!mail.subject.trim().is_empty(), "{template:?} {locale}");
                assert!(!mail.subject.contains('\n'));
                for needle in needles {
                    assert!(
                        mail.text.contains(needle),
                        "{template:?} {locale} text lacks {needle}:\n{}",
                        mail.text
                    );
                    assert!(
                        mail.html.contains(needle),
                        "{template:?} {locale} html lacks {needle}:\n{}",
                        mail.html
                    );
                }
                assert!(
                    mail.html.contains(&format!("<html lang=\"{locale}\">")),
                    "{}",
                    mail.html
                );
                // The subject reaches the page title (escaped like everything else).
                assert!(mail.html.contains("<title>"));
                assert!(!mail.text.contains("{{") && !mail.html.contains("{{"));
            }
        }
    }

    #[test]
    fn organization_names_reach_subject_and_bodies() {
        let template = Template::OrganizationEmailCode {
            code: "111222".into(),
            organization: "한빛상사".into(),
            minutes: 5,
        };
        for locale in Locale::ALL {
            let mail = render(&template, locale).unwrap();
            assert!(mail.subject.contains("한빛상사"), "{}", mail.subject);
            assert!(mail.text.contains("한빛상사"));
            assert!(mail.html.contains("한빛상사"));
        }
    }

    #[test]
    fn korean_and_english_differ_and_are_in_their_language() {
        let hangul = |s: &str| s.chars().any(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c));
        for (template, _) in all_templates("Acme") {
            let ko = render(&template, Locale::Ko).unwrap();
            let en = render(&template, Locale::En).unwrap();
            assert_ne!(ko.subject, en.subject, "{template:?}");
            assert_ne!(ko.text, en.text, "{template:?}");
            assert_ne!(ko.html, en.html, "{template:?}");
            assert!(
                hangul(&ko.subject) && hangul(&ko.text) && hangul(&ko.html),
                "{template:?}"
            );
            // Registration mails quote Korean user input; the others must be
            // pure English in English.
            if !matches!(
                template,
                Template::RegistrationReceived { .. } | Template::RegistrationRejected { .. }
            ) {
                assert!(
                    !hangul(&en.subject) && !hangul(&en.text) && !hangul(&en.html),
                    "{template:?}"
                );
            }
        }
    }

    #[test]
    fn html_escapes_user_supplied_names_but_text_keeps_them() {
        let evil = "<script>alert(1)</script>";
        let mut escaped = 0;
        for (template, _) in all_templates(evil) {
            for locale in Locale::ALL {
                let mail = render(&template, locale).unwrap();
                assert!(
                    !mail.html.contains("<script>"),
                    "{template:?} {locale}:\n{}",
                    mail.html
                );
                // Templates that show the name show it escaped, as text.
                if mail.text.contains(evil) {
                    escaped += 1;
                    assert!(
                        mail.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
                        "{template:?} {locale}:\n{}",
                        mail.html
                    );
                }
            }
        }
        // organization_email_code, activation_link and both registration mails.
        assert_eq!(escaped, 4 * Locale::ALL.len());
    }

    #[test]
    fn links_are_attribute_safe_but_readable() {
        let template = Template::PasswordReset {
            code: "123456".into(),
            link: "https://x.test/r?a=1&b=\"><img src=x onerror=alert(1)>".into(),
            minutes: 5,
        };
        let mail = render(&template, Locale::En).unwrap();
        assert!(!mail.html.contains("<img"), "{}", mail.html);
        assert!(
            mail.html.contains(
                "href=\"https://x.test/r?a=1&amp;b=&quot;&gt;&lt;img src=x onerror=alert(1)&gt;\""
            ),
            "{}",
            mail.html
        );
        // No `&#x2f;` noise in ordinary links.
        let plain = Template::PasswordReset {
            code: "123456".into(),
            link: "https://auth.example.com/reset/abc".into(),
            minutes: 5,
        };
        let mail = render(&plain, Locale::Ko).unwrap();
        assert!(
            mail.html
                .contains("href=\"https://auth.example.com/reset/abc\""),
            "{}",
            mail.html
        );
    }

    #[test]
    fn english_plurals() {
        let one = render(
            &Template::VerificationCode {
                code: "000001".into(),
                minutes: 1,
            },
            Locale::En,
        )
        .unwrap();
        assert!(one.text.contains("1 minute."), "{}", one.text);
        let many = render(
            &Template::ActivationLink {
                link: "https://x.test/a".into(),
                organization: "Acme".into(),
                hours: 48,
            },
            Locale::En,
        )
        .unwrap();
        assert!(many.text.contains("48 hours."), "{}", many.text);
    }

    #[test]
    fn subjects_are_single_lines_even_with_line_breaks_in_names() {
        let mail = render(
            &Template::ActivationLink {
                link: "https://x.test/a".into(),
                organization: "Acme\r\nBcc: victim@example.com".into(),
                hours: 1,
            },
            Locale::En,
        )
        .unwrap();
        assert_eq!(
            mail.subject,
            "Activate your Acme Bcc: victim@example.com account"
        );
    }

    #[test]
    fn debug_output_hides_codes() {
        let template = Template::VerificationCode {
            code: "987654".into(),
            minutes: 10,
        };
        let mail = render(&template, Locale::Ko).unwrap();
        assert!(!format!("{template:?}").contains("987654"));
        assert!(!format!("{mail:?}").contains("987654"));
    }

    #[test]
    fn outbox_row_is_pending_and_fresh() {
        let template = Template::PasswordReset {
            code: "246810".into(),
            link: "https://x.test/r".into(),
            minutes: 30,
        };
        let row = outbox_row(" someone@example.com ", &template, Locale::En).unwrap();
        assert_eq!(row.recipient, "someone@example.com");
        assert_eq!(row.status, storage::repo::outbox::PENDING);
        assert_eq!(row.template, "password_reset");
        assert_eq!(row.attempts, 0);
        assert_eq!(row.next_attempt_at, row.created_at);
        assert_eq!(row.last_error, None);
        assert_eq!(row.sent_at, None);
        assert!(uuid::Uuid::parse_str(&row.id).is_ok());
        assert!(row.text_body.contains("246810") && row.html_body.contains("246810"));
        assert_eq!(row.subject, "Reset your password");
        // Microsecond precision: what PostgreSQL keeps.
        assert_eq!(row.created_at.and_utc().timestamp_subsec_nanos() % 1000, 0);
        let other = outbox_row("someone@example.com", &template, Locale::En).unwrap();
        assert_ne!(row.id, other.id);
    }

    #[test]
    fn outbox_row_refuses_bad_recipients() {
        let template = Template::VerificationCode {
            code: "123456".into(),
            minutes: 10,
        };
        for bad in [
            "",
            "not an address",
            "a@",
            "@b.com",
            "a@b.com\r\nBcc: c@d.com",
        ] {
            assert!(
                matches!(
                    outbox_row(bad, &template, Locale::Ko),
                    Err(MailError::Address(_))
                ),
                "{bad:?}"
            );
        }
    }
}
