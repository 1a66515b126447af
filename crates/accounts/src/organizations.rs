//! Organizations (schools, companies) with the email domains their members
//! use, and proving an address belongs to one (seed 004: verify, then sign up).

use mailer::{Locale, Template};
use storage::models::{OrganizationDomainRow, OrganizationRow};
use storage::repo::organizations;

use crate::codes::{self, CodeCheck, Purpose};
use crate::error::AccountsError;
use crate::service::{Accounts, ClientInfo};
use crate::types::{Domain, EmailAddress};

type Result<T> = std::result::Result<T, AccountsError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub region: Option<String>,
    pub active: bool,
    pub email_domains: Vec<String>,
}

fn view(row: OrganizationRow, domains: &[OrganizationDomainRow]) -> Organization {
    Organization {
        email_domains: domains
            .iter()
            .filter(|d| d.organization_id == row.id)
            .map(|d| d.domain.clone())
            .collect(),
        id: row.id,
        name: row.name,
        region: row.region,
        active: row.active,
    }
}

impl Accounts {
    pub fn create_organization(
        &self,
        name: &str,
        region: Option<&str>,
        domains: &[Domain],
        include_subdomains: bool,
    ) -> Result<Organization> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(crate::types::ParseError {
                field: "name",
                reason: "must be 1 to 200 characters",
            }
            .into());
        }
        let id = uuid::Uuid::new_v4().to_string();
        self.transact(|c, at| {
            organizations::insert(
                c,
                &OrganizationRow {
                    id: id.clone(),
                    name: name.to_owned(),
                    region: region
                        .map(str::trim)
                        .filter(|r| !r.is_empty())
                        .map(str::to_owned),
                    active: true,
                    created_at: at.naive_utc(),
                },
            )?;
            for domain in domains {
                organizations::add_domain(
                    c,
                    &OrganizationDomainRow {
                        organization_id: id.clone(),
                        domain: domain.as_str().to_owned(),
                        include_subdomains,
                    },
                )
                .map_err(|e| match e {
                    storage::StorageError::UniqueViolation => AccountsError::DomainExists,
                    other => other.into(),
                })?;
            }
            Ok(Ok(()))
        })?;
        self.organization(&id)?
            .ok_or(AccountsError::OrganizationNotFound)
    }

    pub fn organization(&self, id: &str) -> Result<Option<Organization>> {
        let mut conn = self.conn()?;
        let Some(row) = organizations::find(&mut conn, id)? else {
            return Ok(None);
        };
        let domains = organizations::domains(&mut conn, id)?;
        Ok(Some(view(row, &domains)))
    }

    pub fn list_organizations(&self, only_active: bool) -> Result<Vec<Organization>> {
        let mut conn = self.conn()?;
        let rows = organizations::list(&mut conn, only_active)?;
        let domains = organizations::all_domains(&mut conn)?;
        Ok(rows.into_iter().map(|row| view(row, &domains)).collect())
    }

    pub fn add_organization_domain(
        &self,
        id: &str,
        domain: &Domain,
        include_subdomains: bool,
    ) -> Result<()> {
        self.transact(|c, _| {
            if organizations::find(c, id)?.is_none() {
                return Ok(Err(AccountsError::OrganizationNotFound));
            }
            let row = OrganizationDomainRow {
                organization_id: id.to_owned(),
                domain: domain.as_str().to_owned(),
                include_subdomains,
            };
            match organizations::add_domain(c, &row) {
                Ok(()) => Ok(Ok(())),
                Err(storage::StorageError::UniqueViolation) => Ok(Err(AccountsError::DomainExists)),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// False when the organization had no such domain.
    pub fn remove_organization_domain(&self, id: &str, domain: &Domain) -> Result<bool> {
        let mut conn = self.conn()?;
        if organizations::find(&mut conn, id)?.is_none() {
            return Err(AccountsError::OrganizationNotFound);
        }
        Ok(organizations::remove_domain(
            &mut conn,
            id,
            domain.as_str(),
        )?)
    }

    /// Mails a code to an address under one of the organization's domains.
    pub fn request_organization_code(
        &self,
        organization_id: &str,
        email: &EmailAddress,
        locale: Locale,
        origin: &ClientInfo,
    ) -> Result<()> {
        self.admit_mail(email.as_str(), origin.ip.as_deref())?;
        self.transact(|c, at| {
            let Some(org) = organizations::find(c, organization_id)?.filter(|o| o.active) else {
                return Ok(Err(AccountsError::OrganizationNotFound));
            };
            let domain = email.domain();
            let allowed = organizations::domains(c, organization_id)?
                .iter()
                .any(|d| domain.is_covered_by(&d.domain, d.include_subdomains));
            if !allowed {
                return Ok(Err(AccountsError::EmailDomainNotAllowed));
            }
            let code = match codes::issue(
                c,
                &self.code_key,
                Purpose::Organization,
                email.as_str(),
                Some(organization_id),
                at.naive_utc(),
            ) {
                Ok(code) => code,
                Err(e @ AccountsError::TooManyRequests { .. }) => return Ok(Err(e)),
                Err(e) => return Err(e),
            };
            let template = Template::OrganizationEmailCode {
                code,
                organization: org.name,
                minutes: codes::CODE_TTL.num_minutes(),
            };
            self.queue_mail(c, email.as_str(), &template, locale)?;
            Ok(Ok(()))
        })?;
        (self.on_mail_queued)();
        Ok(())
    }

    /// Confirms the code; records the address as verified for the
    /// organization it was requested for, whose id is returned.
    pub fn confirm_organization_code(
        &self,
        email: &EmailAddress,
        code: &str,
        origin: &ClientInfo,
    ) -> Result<String> {
        self.admit_code_attempt(origin.ip.as_deref())?;
        self.transact(|c, at| {
            match codes::check(
                c,
                &self.code_key,
                Purpose::Organization,
                email.as_str(),
                code,
                at.naive_utc(),
            )? {
                CodeCheck::Refused(e) => Ok(Err(e)),
                CodeCheck::Verified(verified) => {
                    let Some(org_id) = verified.organization_id else {
                        return Ok(Err(AccountsError::InvalidCode));
                    };
                    organizations::record_verified_email(
                        c,
                        email.as_str(),
                        &org_id,
                        at.naive_utc(),
                    )?;
                    Ok(Ok(org_id))
                }
            }
        })
    }
}
