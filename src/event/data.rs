//! Typed, optional accessors over an event's `data` object.
//!
//! Egnyte publishes no schema for `data`; the field names here come from Egnyte's own connector
//! code, the best evidence there is. So every accessor is optional and nothing here ever rejects
//! an event: a missing or differently typed field reads as `None`. The family views
//! ([`Data::file`], [`Data::link`], …) are cheap wrappers; each accessor looks its key up when
//! called (first of duplicate keys wins, as everywhere in this crate).

use super::{EventType, Family};
use crate::json::Json;

/// Declares accessors that read one string field of the wrapped object.
macro_rules! str_fields {
    ($($(#[$doc:meta])* $name:ident => $key:literal,)*) => {
        $(
            $(#[$doc])*
            pub fn $name(&self) -> Option<&'buf str> {
                self.0.get_str($key)
            }
        )*
    };
}

/// An event's `data` object, seen through its event type.
#[derive(Debug, Clone, Copy)]
pub struct Data<'buf> {
    json: Json<'buf>,
    event_type: EventType<'buf>,
}

impl<'buf> Data<'buf> {
    pub(crate) fn new(json: Json<'buf>, event_type: EventType<'buf>) -> Data<'buf> {
        Data { json, event_type }
    }

    /// The raw view of the `data` object.
    pub fn json(&self) -> Json<'buf> {
        self.json
    }

    /// The path the event is about: `targetPath`, else `sourcePath`, else `folderPath`, else the
    /// workflow's `firstEntity.filePath`; `None` when the event has none of them as a string.
    /// Used to keep events on one path in order.
    pub fn primary_path(&self) -> Option<&'buf str> {
        let j = self.json;
        j.get_str("targetPath")
            .or_else(|| j.get_str("sourcePath"))
            .or_else(|| j.get_str("folderPath"))
            .or_else(|| j.path(&["firstEntity", "filePath"]).and_then(|v| v.as_str()))
    }

    /// The id of the thing the event is about, chosen by family: a file's `targetGroupId` (else
    /// `targetEntryId`), a link's `linkId`, a workflow's `workflow.id`, a group's `groupId`. For
    /// other families the first of those keys present as a string. Numeric ids read as `None`.
    pub fn subject_id(&self) -> Option<&'buf str> {
        let j = self.json;
        let file = || j.get_str("targetGroupId").or_else(|| j.get_str("targetEntryId"));
        let link = || j.get_str("linkId");
        let workflow = || j.path(&["workflow", "id"]).and_then(|v| v.as_str());
        let group = || j.get_str("groupId");
        match self.event_type.family() {
            Family::Fs | Family::Meta | Family::Comment => file(),
            Family::Link => link(),
            Family::Workflow => workflow(),
            Family::Group => group(),
            Family::Permission | Family::Other => file().or_else(link).or_else(workflow).or_else(group),
        }
    }

    /// File and folder fields (`fs:*`, also useful for comments).
    pub fn file(&self) -> FileData<'buf> {
        FileData(self.json)
    }

    /// Link fields (`link:*`, `fs:upload_link`).
    pub fn link(&self) -> LinkData<'buf> {
        LinkData(self.json)
    }

    /// Metadata fields (`meta:*`).
    pub fn metadata(&self) -> MetadataData<'buf> {
        MetadataData(self.json)
    }

    /// Project folder fields (`fs:folder_project_activity`).
    pub fn project(&self) -> ProjectData<'buf> {
        ProjectData(self.json)
    }

    /// Permission fields (`permission:permission_change`).
    pub fn permission(&self) -> PermissionData<'buf> {
        PermissionData(self.json)
    }

    /// Workflow fields (`workflow:*`).
    pub fn workflow(&self) -> WorkflowData<'buf> {
        WorkflowData(self.json)
    }

    /// Group fields (`group:*`).
    pub fn group(&self) -> GroupData<'buf> {
        GroupData(self.json)
    }
}

/// File and folder fields of `data`.
#[derive(Debug, Clone, Copy)]
pub struct FileData<'buf>(Json<'buf>);

impl<'buf> FileData<'buf> {
    str_fields! {
        /// `targetPath`: the file or folder the event happened to (its new path after a move).
        target_path => "targetPath",
        /// `sourcePath`: the original path of a copy or move.
        source_path => "sourcePath",
        /// `targetGroupId`: the file's stable id across versions.
        target_group_id => "targetGroupId",
        /// `targetEntryId`: the id of this version of the file.
        target_entry_id => "targetEntryId",
        /// `targetFileChecksum` (lock and unlock).
        target_file_checksum => "targetFileChecksum",
    }
}

/// Link fields of `data`.
#[derive(Debug, Clone, Copy)]
pub struct LinkData<'buf>(Json<'buf>);

impl<'buf> LinkData<'buf> {
    str_fields! {
        /// `sourcePath`: the linked file or folder.
        source_path => "sourcePath",
        /// `linkId`.
        link_id => "linkId",
        /// `linkType` (for example `file` or `folder`).
        link_type => "linkType",
        /// `linkURL`.
        link_url => "linkURL",
    }
}

/// Metadata fields of `data`.
#[derive(Debug, Clone, Copy)]
pub struct MetadataData<'buf>(Json<'buf>);

impl<'buf> MetadataData<'buf> {
    str_fields! {
        /// `targetPath`.
        target_path => "targetPath",
        /// `targetGroupId`.
        target_group_id => "targetGroupId",
        /// `namespace` of the key.
        namespace => "namespace",
        /// `key`.
        key => "key",
        /// `action`.
        action => "action",
    }
}

/// Project folder fields of `data`.
#[derive(Debug, Clone, Copy)]
pub struct ProjectData<'buf>(Json<'buf>);

impl<'buf> ProjectData<'buf> {
    str_fields! {
        /// `projectId`.
        project_id => "projectId",
        /// `projectRootFolderId`.
        project_root_folder_id => "projectRootFolderId",
        /// `name` (optional even in Egnyte's code).
        name => "name",
        /// `location`.
        location => "location",
        /// `status`.
        status => "status",
    }
}

/// Permission fields of `data`.
#[derive(Debug, Clone, Copy)]
pub struct PermissionData<'buf>(Json<'buf>);

impl<'buf> PermissionData<'buf> {
    str_fields! {
        /// `assignee`: who received the permission.
        assignee => "assignee",
        /// `assigner`: who changed it.
        assigner => "assigner",
        /// `folderPath`.
        folder_path => "folderPath",
        /// `oldPrivilege`.
        old_privilege => "oldPrivilege",
        /// `newPrivilege`.
        new_privilege => "newPrivilege",
        /// `groupName`, when the assignee is a group.
        group_name => "groupName",
    }

    /// `assigneeId` (a number in Egnyte's code).
    pub fn assignee_id(&self) -> Option<u64> {
        self.0.get("assigneeId").and_then(|v| v.as_u64())
    }

    /// `assignerId` (a number in Egnyte's code).
    pub fn assigner_id(&self) -> Option<u64> {
        self.0.get("assignerId").and_then(|v| v.as_u64())
    }
}

/// Workflow fields of `data`: the `workflow`, `firstEntity`, `step` and `assignee` objects are
/// reached through their own accessors.
#[derive(Debug, Clone, Copy)]
pub struct WorkflowData<'buf>(Json<'buf>);

impl<'buf> WorkflowData<'buf> {
    fn nested(&self, object: &str, key: &str) -> Option<&'buf str> {
        self.0.get(object).and_then(|o| o.get_str(key))
    }

    /// `workflow.id`.
    pub fn id(&self) -> Option<&'buf str> {
        self.nested("workflow", "id")
    }

    /// `workflow.name`.
    pub fn name(&self) -> Option<&'buf str> {
        self.nested("workflow", "name")
    }

    /// `workflow.type`.
    pub fn workflow_type(&self) -> Option<&'buf str> {
        self.nested("workflow", "type")
    }

    /// `workflow.actionStatus`.
    pub fn action_status(&self) -> Option<&'buf str> {
        self.nested("workflow", "actionStatus")
    }

    /// `firstEntity.filePath`: the file the workflow started on.
    pub fn file_path(&self) -> Option<&'buf str> {
        self.nested("firstEntity", "filePath")
    }

    /// `step.name` (approval tasks).
    pub fn step_name(&self) -> Option<&'buf str> {
        self.nested("step", "name")
    }

    /// `assignee.username` (approval tasks).
    pub fn assignee_username(&self) -> Option<&'buf str> {
        self.nested("assignee", "username")
    }

    /// `definitionJson` (created): a JSON document serialised as a string.
    pub fn definition_json(&self) -> Option<&'buf str> {
        self.0.get_str("definitionJson")
    }

    /// `completionStatusCode` (completed).
    pub fn completion_status_code(&self) -> Option<&'buf str> {
        self.0.get_str("completionStatusCode")
    }
}

/// Group fields of `data`.
#[derive(Debug, Clone, Copy)]
pub struct GroupData<'buf>(Json<'buf>);

impl<'buf> GroupData<'buf> {
    str_fields! {
        /// `groupId`.
        group_id => "groupId",
        /// `groupName`.
        group_name => "groupName",
        /// `owner`.
        owner => "owner",
        /// `action`.
        action => "action",
    }

    /// `user.userName`: the user the change was about.
    pub fn user_name(&self) -> Option<&'buf str> {
        self.0.get("user").and_then(|u| u.get_str("userName"))
    }

    /// `members`: the array of members, as a view.
    pub fn members(&self) -> Option<Json<'buf>> {
        self.0.get("members").filter(|m| m.kind() == crate::json::JsonKind::Array)
    }
}
