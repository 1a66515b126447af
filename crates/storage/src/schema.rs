//! The diesel view of `migrations/{sqlite,postgres}`. Kept by hand because one
//! schema serves both backends; `tests/schema_matches_migrations.rs` checks it
//! against both migrated databases, column by column.

diesel::table! {
    organizations (id) {
        id -> Text,
        name -> Text,
        region -> Nullable<Text>,
        active -> Bool,
        created_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        username -> Nullable<Text>,
        name -> Nullable<Text>,
        password_hash -> Nullable<Text>,
        status -> Text,
        organization_id -> Nullable<Text>,
        permission_version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        locale -> Nullable<Text>,
        must_change_password -> Bool,
        password_changed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    user_roles (user_id, role) {
        user_id -> Text,
        role -> Text,
    }
}

diesel::table! {
    user_permissions (user_id, permission) {
        user_id -> Text,
        permission -> Text,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        last_used_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        revoke_reason -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        ip -> Nullable<Text>,
        client_id -> Nullable<Text>,
        amr -> Nullable<Text>,
        auth_time -> Nullable<Timestamp>,
        scope -> Nullable<Text>,
        sso_session_id -> Nullable<Text>,
        forked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Text,
        session_id -> Text,
        token_hash -> Text,
        parent_id -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    revocations (id) {
        id -> BigInt,
        kind -> Text,
        subject -> Text,
        expires_at -> Timestamp,
        created_at -> Timestamp,
    }
}

diesel::table! {
    organization_domains (organization_id, domain) {
        organization_id -> Text,
        domain -> Text,
        include_subdomains -> Bool,
    }
}

diesel::table! {
    email_codes (id) {
        id -> Text,
        purpose -> Text,
        email -> Text,
        organization_id -> Nullable<Text>,
        code_hash -> Text,
        attempts -> BigInt,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        consumed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    email_verifications (email, organization_id) {
        email -> Text,
        organization_id -> Text,
        verified_at -> Timestamp,
    }
}

diesel::table! {
    outbox (id) {
        id -> Text,
        recipient -> Text,
        subject -> Text,
        text_body -> Text,
        html_body -> Text,
        template -> Text,
        status -> Text,
        attempts -> BigInt,
        next_attempt_at -> Timestamp,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    registrations (id) {
        id -> Text,
        company_name -> Text,
        contact_name -> Text,
        contact_email -> Text,
        contact_phone -> Text,
        status -> Text,
        created_at -> Timestamp,
        decided_at -> Nullable<Timestamp>,
        decided_by -> Nullable<Text>,
        decision_note -> Nullable<Text>,
        organization_id -> Nullable<Text>,
        user_id -> Nullable<Text>,
    }
}

diesel::table! {
    activation_tokens (id) {
        id -> Text,
        user_id -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        permissions -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> Timestamp,
        actor -> Nullable<Text>,
        subject -> Nullable<Text>,
        organization_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        event -> Text,
        details -> Text,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    clients (id) {
        id -> Text,
        name -> Text,
        secret_hash -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        redirect_uris -> Text,
        post_logout_redirect_uris -> Text,
        scopes -> Text,
        public -> Bool,
        first_party -> Bool,
        backchannel_logout_uri -> Text,
        id_token_alg -> Text,
    }
}

diesel::table! {
    logout_notifications (id) {
        id -> Text,
        client_id -> Text,
        uri -> Text,
        logout_token -> Text,
        created_at -> Timestamp,
        attempts -> BigInt,
        next_attempt_at -> Timestamp,
        done_at -> Nullable<Timestamp>,
        delivered -> Bool,
    }
}

diesel::table! {
    device_codes (device_code_hash) {
        device_code_hash -> Text,
        user_code_hash -> Text,
        client_id -> Text,
        scope -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        interval_secs -> BigInt,
        last_polled_at -> Nullable<Timestamp>,
        user_id -> Nullable<Text>,
        sso_session_id -> Nullable<Text>,
        approved_at -> Nullable<Timestamp>,
        denied_at -> Nullable<Timestamp>,
        consumed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    consents (user_id, client_id) {
        user_id -> Text,
        client_id -> Text,
        scope -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    authorization_codes (code_hash) {
        code_hash -> Text,
        client_id -> Text,
        user_id -> Text,
        sso_session_id -> Text,
        redirect_uri -> Text,
        code_challenge -> Text,
        nonce -> Nullable<Text>,
        scope -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        session_id -> Nullable<Text>,
    }
}

diesel::table! {
    external_identities (client_id, external_id) {
        client_id -> Text,
        external_id -> Text,
        user_id -> Text,
        login_id -> Text,
        role -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    throttles (key) {
        key -> Text,
        tat -> BigInt,
    }
}

diesel::table! {
    totp_credentials (user_id) {
        user_id -> Text,
        secret_sealed -> Text,
        created_at -> Timestamp,
        confirmed_at -> Nullable<Timestamp>,
        last_used_step -> Nullable<BigInt>,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> Text,
        user_id -> Text,
        code_hash -> Text,
        created_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    mfa_challenges (token_hash) {
        token_hash -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        failures -> BigInt,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    passkeys (id) {
        id -> Text,
        user_id -> Text,
        credential_id -> Text,
        name -> Text,
        credential -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    webauthn_ceremonies (challenge_hash) {
        challenge_hash -> Text,
        purpose -> Text,
        user_id -> Nullable<Text>,
        state -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        document -> Text,
        created_at -> BigInt,
        retired_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    server_secrets (name) {
        name -> Text,
        sealed_value -> Text,
        created_at -> BigInt,
    }
}

diesel::joinable!(users -> organizations (organization_id));
diesel::joinable!(totp_credentials -> users (user_id));
diesel::joinable!(recovery_codes -> users (user_id));
diesel::joinable!(mfa_challenges -> users (user_id));
diesel::joinable!(passkeys -> users (user_id));
diesel::joinable!(webauthn_ceremonies -> users (user_id));
diesel::joinable!(user_roles -> users (user_id));
diesel::joinable!(user_permissions -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::joinable!(organization_domains -> organizations (organization_id));
diesel::joinable!(email_codes -> organizations (organization_id));
diesel::joinable!(email_verifications -> organizations (organization_id));
diesel::joinable!(registrations -> organizations (organization_id));
diesel::joinable!(activation_tokens -> users (user_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(external_identities -> clients (client_id));
diesel::joinable!(consents -> clients (client_id));
diesel::joinable!(external_identities -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    authorization_codes,
    consents,
    device_codes,
    logout_notifications,
    throttles,
    organizations,
    users,
    user_roles,
    user_permissions,
    sessions,
    refresh_tokens,
    revocations,
    organization_domains,
    email_codes,
    email_verifications,
    outbox,
    registrations,
    activation_tokens,
    api_tokens,
    audit_log,
    clients,
    external_identities,
    totp_credentials,
    recovery_codes,
    mfa_challenges,
    passkeys,
    webauthn_ceremonies,
    signing_keys,
    server_secrets,
);
