//! Masking of phone numbers and e-mail addresses before text reaches the index.
//!
//! Search results are shown to every agent, and an index is copied, backed up and rebuilt
//! far more casually than the log, so contact details customers type into a chat do not go
//! into it: every text is masked before it is tokenized or stored, and the index never holds
//! the original. (The log keeps it; masking there is another matter.)
//!
//! **What is masked** (ASCII digits only; full-width digits are left alone):
//!
//! - e-mail addresses: `local@domain.tld` → [`EMAIL_MASK`];
//! - Chinese mobile numbers: `1[3-9]x xxxx xxxx`, the groups optionally separated by a space
//!   or `-`, with an optional `+86`, `0086` or `86` prefix;
//! - international numbers written with `+` or `00` and a country code, then 7 to 14 digits
//!   (single spaces or dashes between digits allowed);
//! - landlines with an area code: `0xx` or `0xxx` followed by a space or `-`, or in
//!   parentheses, then 7 or 8 digits (`010-12345678`, `(0755)1234567`);
//!
//! all → [`PHONE_MASK`];
//! - resident ID-card numbers: 18 digits (the last may be `X`) or the old 15, shaped as
//!   area code, a birth date (`YYYYMMDD`, 19xx or 20xx; `YYMMDD` in the old ones) and a
//!   sequence → [`ID_CARD_MASK`];
//! - bank card numbers: 13 to 19 digits, in one run or in groups split by single spaces or
//!   dashes, that pass the Luhn check → [`CARD_MASK`].
//!
//! A number only counts when it does not sit inside a longer run of letters and digits, so
//! order numbers, tracking numbers and amounts (which are long digit runs without a `+`,
//! area code, birth date, Luhn digit or separator pattern) are kept: agents search for
//! those. A bare digit run without any of these shapes is not masked, because it cannot be
//! told from an order number (one in ten long order numbers passes Luhn by chance and is
//! masked as a card: the price of not showing card numbers).
//!
//! **Why a fixed mask without letters or digits** rather than `138****5678` or
//! `z***@example.com`: retrieval ORs the query's words, so every word a partial mask keeps
//! (`138`, `5678`, `example`, `com`) would let a search for the raw number or address, written
//! with spaces or in full, find the masked message anyway. The masks below tokenize to
//! nothing, so there is nothing left to match.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// What a phone number is replaced with.
pub const PHONE_MASK: &str = "***-****-****";
/// What an e-mail address is replaced with.
pub const EMAIL_MASK: &str = "***@***";
/// What an ID-card number is replaced with.
pub const ID_CARD_MASK: &str = "******-********-****";
/// What a bank card number is replaced with.
pub const CARD_MASK: &str = "****-****-****-****";

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
        .expect("e-mail pattern compiles")
});

static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    let sep = "[ -]?";
    let mobile = format!("(?:(?:\\+|00)?86{sep})?1[3-9][0-9](?:{sep}[0-9]{{4}}){{2}}");
    let international = format!("(?:\\+|00)[1-9][0-9]{{0,2}}{sep}[0-9](?:{sep}[0-9]){{6,13}}");
    let landline = "(?:0[1-9][0-9]{1,2}[ -]|\\(0[1-9][0-9]{1,2}\\)[ -]?)[1-9][0-9]{6,7}";
    Regex::new(&format!("{mobile}|{international}|{landline}")).expect("phone pattern compiles")
});

static ID_CARD: LazyLock<Regex> = LazyLock::new(|| {
    let (month, day) = ("(?:0[1-9]|1[0-2])", "(?:0[1-9]|[12][0-9]|3[01])");
    let new = format!("[1-9][0-9]{{5}}(?:19|20)[0-9]{{2}}{month}{day}[0-9]{{3}}[0-9Xx]");
    let old = format!("[1-9][0-9]{{5}}[0-9]{{2}}{month}{day}[0-9]{{3}}");
    Regex::new(&format!("{new}|{old}")).expect("ID-card pattern compiles")
});

static CARD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("[0-9](?:[ -]?[0-9]){12,18}").expect("card pattern compiles"));

/// `text` with e-mail addresses, phone numbers, ID-card and bank card numbers replaced by
/// their masks.
pub fn mask(text: &str) -> Cow<'_, str> {
    // Addresses first: a QQ mail address is often a phone number followed by `@qq.com`, and
    // it should go as one address rather than leave `@qq.com` behind.
    let mut text = EMAIL.replace_all(text, EMAIL_MASK);
    for (pattern, is_one, mask) in [
        (&*PHONE, any as fn(&str) -> bool, PHONE_MASK),
        (&*ID_CARD, any, ID_CARD_MASK),
        (&*CARD, luhn, CARD_MASK),
    ] {
        if let Cow::Owned(masked) = mask_matches(&text, pattern, is_one, mask) {
            text = Cow::Owned(masked);
        }
    }
    text
}

fn any(_: &str) -> bool {
    true
}

/// The Luhn check of a card number's digits (separators skipped).
fn luhn(number: &str) -> bool {
    let digits = number
        .bytes()
        .rev()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'));
    let sum: u32 = digits
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// `text` with every match of `pattern` that `is_one` accepts, and that does not sit inside
/// a longer run of letters or digits, replaced by `mask`.
fn mask_matches<'t>(
    text: &'t str,
    pattern: &Regex,
    is_one: fn(&str) -> bool,
    mask: &str,
) -> Cow<'t, str> {
    let mut out = String::new();
    let mut copied = 0;
    for found in pattern.find_iter(text) {
        let before = text[..found.start()].chars().next_back();
        let after = text[found.end()..].chars().next();
        // Inside a longer run of letters or digits it is part of something else (an order
        // number, a serial), not a phone, ID or card number.
        if before.is_some_and(|c| c.is_ascii_alphanumeric())
            || after.is_some_and(|c| c.is_ascii_alphanumeric())
            || !is_one(found.as_str())
        {
            continue;
        }
        out.push_str(&text[copied..found.start()]);
        out.push_str(mask);
        copied = found.end();
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(text: &str) -> String {
        mask(text).into_owned()
    }

    #[test]
    fn mobile_numbers_in_their_usual_spellings() {
        for raw in [
            "13812345678",
            "138 1234 5678",
            "138-1234-5678",
            "+86 138 1234 5678",
            "+8613812345678",
            "008613812345678",
            "86-138-1234-5678",
        ] {
            assert_eq!(
                masked(&format!("电话{raw}谢谢")),
                format!("电话{PHONE_MASK}谢谢")
            );
        }
    }

    #[test]
    fn landlines_and_international_numbers() {
        assert_eq!(masked("座机010-12345678"), format!("座机{PHONE_MASK}"));
        assert_eq!(masked("打(0755)1234567吧"), format!("打{PHONE_MASK}吧"));
        assert_eq!(
            masked("call +1 415 555 2671 now"),
            format!("call {PHONE_MASK} now")
        );
        assert_eq!(
            masked("call +44 20 7946 0958."),
            format!("call {PHONE_MASK}.")
        );
    }

    #[test]
    fn e_mail_addresses() {
        assert_eq!(
            masked("邮箱 Zhang.San+jd@example.com.cn 收"),
            format!("邮箱 {EMAIL_MASK} 收")
        );
        assert_eq!(masked("13812345678@qq.com"), EMAIL_MASK);
    }

    #[test]
    fn id_card_numbers_new_and_old() {
        for raw in [
            "11010519491231002X",
            "110105194912310021",
            "440524198001010014",
        ] {
            assert_eq!(
                masked(&format!("身份证{raw}。")),
                format!("身份证{ID_CARD_MASK}。")
            );
        }
        assert_eq!(
            masked("旧证 110105491231002 号"),
            format!("旧证 {ID_CARD_MASK} 号")
        );
        // An 18-digit run whose "birth date" is no date is an order number.
        assert_eq!(masked("订单 202401151234567890"), "订单 202401151234567890");
    }

    #[test]
    fn bank_card_numbers_that_pass_luhn() {
        for raw in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "6222-0212-3456-7890-128",
            "378282246310005",
        ] {
            assert_eq!(
                masked(&format!("卡号{raw}谢谢")),
                format!("卡号{CARD_MASK}谢谢"),
                "{raw}"
            );
        }
        // The same digits with a wrong check digit are kept.
        assert_eq!(masked("单号 4111111111111112"), "单号 4111111111111112");
    }

    #[test]
    fn order_numbers_amounts_and_dates_are_kept() {
        for kept in [
            "订单号 238123456789 还没发货",
            "订单138123456789",
            "快递单号SF1381234567890",
            "退款 1380.50 元",
            "2024-01-15 下单",
            "已付款 12345678 分",
        ] {
            assert_eq!(masked(kept), kept);
        }
    }

    #[test]
    fn text_without_contact_details_is_not_copied() {
        assert!(matches!(mask("我的快递到哪了"), Cow::Borrowed(_)));
    }
}
