//! The permission catalog (feature categories such as `sms` and `fame`,
//! configured by the operator) and the roles.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::AccountsError;

/// Every permission a deployment knows, grouped by category: the part
/// before `:` (`sms:send` is in `sms`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PermissionCatalog {
    categories: BTreeMap<String, BTreeSet<String>>,
}

impl Default for PermissionCatalog {
    fn default() -> Self {
        Self::parse(["sms:send", "sms:read", "fame:read", "fame:write"]).expect("valid defaults")
    }
}

fn well_formed(permission: &str) -> bool {
    let part = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    matches!(permission.split_once(':'), Some((category, action)) if part(category) && action.split(':').all(part))
}

impl PermissionCatalog {
    /// From `category:action` strings; refuses malformed names.
    pub fn parse<'a>(permissions: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut categories: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for permission in permissions {
            let permission = permission.trim();
            if !well_formed(permission) {
                return Err(format!(
                    "'{permission}' is not of the form category:action (lowercase)"
                ));
            }
            let (category, _) = permission.split_once(':').expect("checked");
            categories
                .entry(category.to_owned())
                .or_default()
                .insert(permission.to_owned());
        }
        if categories.is_empty() {
            return Err("the permission catalog is empty".to_owned());
        }
        Ok(Self { categories })
    }

    pub fn categories(&self) -> &BTreeMap<String, BTreeSet<String>> {
        &self.categories
    }

    pub fn all(&self) -> Vec<String> {
        self.categories.values().flatten().cloned().collect()
    }

    pub fn contains(&self, permission: &str) -> bool {
        permission
            .split_once(':')
            .and_then(|(category, _)| self.categories.get(category))
            .is_some_and(|set| set.contains(permission))
    }

    /// A requested permission list: every entry known, no duplicates.
    /// Returns it sorted.
    pub fn validate(&self, requested: &[String]) -> Result<Vec<String>, AccountsError> {
        let mut seen = BTreeSet::new();
        let mut duplicates = Vec::new();
        let mut unknown = Vec::new();
        for permission in requested {
            if !self.contains(permission) {
                unknown.push(permission.clone());
            } else if !seen.insert(permission.clone()) {
                duplicates.push(permission.clone());
            }
        }
        if !unknown.is_empty() || !duplicates.is_empty() {
            return Err(AccountsError::InvalidPermissions {
                unknown,
                duplicates,
                valid: self.all(),
            });
        }
        Ok(seen.into_iter().collect())
    }
}

/// What a user may do beyond their permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Operator staff: reviews registrations, manages every user.
    Admin,
    /// Manages the users of their own organization, within their own permissions.
    OrgAdmin,
    Member,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::OrgAdmin, Role::Member];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::OrgAdmin => "org_admin",
            Self::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// A requested role list: known roles, no duplicates; sorted names.
    pub fn validate(requested: &[String]) -> Result<Vec<String>, AccountsError> {
        let mut roles = BTreeSet::new();
        for name in requested {
            let role = Self::parse(name).ok_or_else(|| AccountsError::UnknownRole(name.clone()))?;
            if !roles.insert(role) {
                return Err(AccountsError::UnknownRole(format!("{name} (listed twice)")));
            }
        }
        Ok(roles.into_iter().map(|r| r.as_str().to_owned()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_groups_by_category_and_validates() {
        let catalog = PermissionCatalog::default();
        assert_eq!(
            catalog.categories().keys().collect::<Vec<_>>(),
            ["fame", "sms"]
        );
        assert_eq!(
            catalog
                .validate(&["sms:send".into(), "fame:read".into()])
                .unwrap(),
            ["fame:read", "sms:send"]
        );
        let Err(AccountsError::InvalidPermissions {
            unknown,
            duplicates,
            valid,
        }) = catalog.validate(&["sms:send".into(), "sms:send".into(), "sms:delete".into()])
        else {
            panic!("expected a refusal");
        };
        assert_eq!(
            (unknown, duplicates),
            (vec!["sms:delete".to_owned()], vec!["sms:send".to_owned()])
        );
        assert_eq!(valid.len(), 4);
        assert!(PermissionCatalog::parse(["SMS:send"]).is_err());
        assert!(PermissionCatalog::parse(["nocategory"]).is_err());
        assert!(
            PermissionCatalog::parse(["billing:invoice:read"])
                .unwrap()
                .contains("billing:invoice:read")
        );
    }

    #[test]
    fn roles_parse() {
        assert_eq!(
            Role::validate(&["member".into(), "admin".into()]).unwrap(),
            ["admin", "member"]
        );
        assert!(Role::validate(&["root".into()]).is_err());
        assert!(Role::validate(&["admin".into(), "admin".into()]).is_err());
    }
}
