// The desk's words in Chinese and English. A missing key in either language is a type error,
// so neither language can fall behind.
import type {
  AgentStatus,
  CloseReason,
  ConversationStatus,
  EmotionLabel,
  EmotionTrend,
  HandoffReason,
  OrderStatus,
  Role,
  Speaker,
  TicketKind,
} from "./gen/graphql";

export type Lang = "zh" | "en";

const zh = {
  title: "客服工作台",
  signInTitle: "登录",
  signInHelp: "粘贴令牌登录。开发环境中用 kefu token 生成，例如：",
  token: "令牌",
  signIn: "登录",
  signOut: "退出",
  language: "English",
  badToken: "令牌无效或已过期",
  roleNotServed: "此角色没有对应的界面：",
  // Customer chat.
  chatTitle: "在线客服",
  startChat: "开始咨询",
  orderOptional: "订单号（可选）",
  typeMessage: "请输入您的问题…",
  send: "发送",
  askHuman: "转人工",
  placeInLine: "您前面还有 {n} 位，正在排队",
  expectedWait: "预计等待 {t}",
  noAgentOnline: "暂时没有客服在线，请稍候",
  agentJoined: "客服已接入",
  waitingForHuman: "正在为您转接人工客服…",
  closed: "会话已结束",
  surveyAsk: "请为本次服务评分",
  surveyComment: "还有什么想说的？（可选）",
  surveySubmit: "提交评价",
  surveyThanks: "感谢您的评价！",
  newChat: "新的咨询",
  you: "我",
  bot: "智能助手",
  agent: "客服",
  // Agent workbench.
  workbench: "工作台",
  online: "上线",
  away: "暂离",
  offline: "下线",
  chats: "我的会话",
  noChats: "暂无会话。上线后，分配给您的会话会出现在这里。",
  freeSeats: "空闲席位 {n}",
  reply: "回复客户…",
  note: "内部备注（客户不可见）…",
  addNote: "添加备注",
  closeChat: "结束会话",
  internal: "内部备注",
  customer: "客户",
  orderContext: "订单信息",
  order: "订单",
  seller: "卖家",
  category: "品类",
  ordersAttributed: "成交订单",
  orderStatus: "订单状态",
  tier: "会员等级",
  channel: "渠道",
  triage: "智能分诊",
  scenario: "预测场景",
  handoff: "转人工原因",
  mood: "情绪",
  moodTrend: "情绪走势",
  suggestions: "知识库推荐",
  botSuggests: "机器人推荐",
  confidence: "置信度",
  useSuggestion: "引用",
  noSuggestions: "没有匹配的知识条目",
  selectChat: "选择左侧的会话",
  openTicket: "创建工单",
  transferReason: "转接原因…",
  transfer: "转接",
  transferTarget: "转接给",
  backToQueue: "回到队列",
  colleague: "{name}（空闲席位 {n}）",
  ticketSubject: "工单标题…",
  ticketOpened: "工单已创建：{id}",
  slaDue: "首次响应截止 {t}",
  slaBreached: "首次响应已超时",
  // Supervisor dashboard.
  dashboard: "监控大屏",
  allQueues: "全部队列",
  queues: "队列",
  waiting: "排队",
  withAgent: "服务中",
  longestWait: "最长等待",
  agentsOnline: "在线客服",
  seats: "空闲/席位",
  csatToday: "今日满意度",
  firstResponse: "首次响应（中位数）",
  containment: "机器人解决率",
  conversationsToday: "今日会话",
  handoffsByReason: "按原因的转人工",
  forecastVsActual: "每小时会话量：预测与实际",
  forecast: "预测",
  actual: "实际",
  noData: "暂无数据",
  slaWarnings: "SLA 预警",
  breaches: "超时",
  live: "实时",
  seconds: "{n} 秒",
  minutes: "{n} 分钟",
};

const en: typeof zh = {
  title: "kefu desk",
  signInTitle: "Sign in",
  signInHelp: "Paste a token to sign in. In development, mint one with kefu token, e.g.:",
  token: "Token",
  signIn: "Sign in",
  signOut: "Sign out",
  language: "中文",
  badToken: "The token is not valid or has expired",
  roleNotServed: "The desk has no screen for this role: ",
  chatTitle: "Customer service",
  startChat: "Start a chat",
  orderOptional: "Order number (optional)",
  typeMessage: "Type your question…",
  send: "Send",
  askHuman: "Talk to a person",
  placeInLine: "You are number {n} in line",
  expectedWait: "Expected wait {t}",
  noAgentOnline: "No agent is online yet; please hold on",
  agentJoined: "An agent has joined",
  waitingForHuman: "Finding a person to help you…",
  closed: "This chat has ended",
  surveyAsk: "How did we do?",
  surveyComment: "Anything else? (optional)",
  surveySubmit: "Send rating",
  surveyThanks: "Thank you for your rating!",
  newChat: "New chat",
  you: "You",
  bot: "Assistant",
  agent: "Agent",
  workbench: "Workbench",
  online: "Online",
  away: "Away",
  offline: "Offline",
  chats: "My chats",
  noChats: "No chats. Once you are online, chats assigned to you appear here.",
  freeSeats: "{n} free seats",
  reply: "Reply to the customer…",
  note: "Internal note (the customer does not see it)…",
  addNote: "Add note",
  closeChat: "Close chat",
  internal: "Internal note",
  customer: "Customer",
  orderContext: "Order",
  order: "Order",
  seller: "Seller",
  category: "Category",
  ordersAttributed: "Orders placed",
  orderStatus: "Order status",
  tier: "Tier",
  channel: "Channel",
  triage: "Triage",
  scenario: "Predicted scenario",
  handoff: "Hand-off reason",
  mood: "Mood",
  moodTrend: "Mood trend",
  suggestions: "Knowledge base",
  botSuggests: "The bot suggests",
  confidence: "confidence",
  useSuggestion: "Use",
  noSuggestions: "No matching knowledge entry",
  selectChat: "Pick a chat on the left",
  openTicket: "Open ticket",
  transferReason: "Why transfer…",
  transfer: "Transfer",
  transferTarget: "Transfer to",
  backToQueue: "the queue",
  colleague: "{name} ({n} free)",
  ticketSubject: "Ticket subject…",
  ticketOpened: "Ticket opened: {id}",
  slaDue: "First response due {t}",
  slaBreached: "First response overdue",
  dashboard: "Dashboard",
  allQueues: "All queues",
  queues: "Queues",
  waiting: "Waiting",
  withAgent: "With agent",
  longestWait: "Longest wait",
  agentsOnline: "Agents online",
  seats: "Free / seats",
  csatToday: "CSAT today",
  firstResponse: "First response (median)",
  containment: "Bot containment",
  conversationsToday: "Conversations today",
  handoffsByReason: "Hand-offs by reason",
  forecastVsActual: "Conversations per hour: forecast and actual",
  forecast: "Forecast",
  actual: "Actual",
  noData: "No data yet",
  slaWarnings: "SLA warnings",
  breaches: "Breaches",
  live: "live",
  seconds: "{n} s",
  minutes: "{n} min",
};

export type Words = typeof zh;
export const words: Record<Lang, Words> = { zh, en };

/** `{n}`-style placeholders filled in. */
export function fill(template: string, values: Record<string, string | number>): string {
  return template.replace(/\{(\w+)\}/g, (_, k: string) => String(values[k] ?? `{${k}}`));
}

export function duration(lang: Lang, secs: number): string {
  const w = words[lang];
  return secs < 90 ? fill(w.seconds, { n: Math.round(secs) }) : fill(w.minutes, { n: Math.round(secs / 60) });
}

type Labels<T extends string> = Record<Lang, Record<T, string>>;

export const statusLabel: Labels<ConversationStatus> = {
  zh: { BOT: "智能助手", AWAITING_HUMAN: "待转人工", QUEUED: "排队中", WITH_AGENT: "人工服务中", CLOSED: "已结束" },
  en: { BOT: "With the bot", AWAITING_HUMAN: "Awaiting a person", QUEUED: "Queued", WITH_AGENT: "With an agent", CLOSED: "Closed" },
};

export const orderStatusLabel: Labels<OrderStatus> = {
  zh: { PAID: "已付款", SHIPPED: "已发货", DELIVERED: "已签收", RETURNED: "已退货", REFUNDED: "已退款" },
  en: { PAID: "Paid", SHIPPED: "Shipped", DELIVERED: "Delivered", RETURNED: "Returned", REFUNDED: "Refunded" },
};

export const speakerLabel: Labels<Speaker> = {
  zh: { CUSTOMER: "客户", BOT: "智能助手", AGENT: "客服" },
  en: { CUSTOMER: "Customer", BOT: "Bot", AGENT: "Agent" },
};

export const emotionLabel: Labels<EmotionLabel> = {
  zh: { POSITIVE: "满意", NEUTRAL: "平静", NEGATIVE: "不满", ANGRY: "愤怒" },
  en: { POSITIVE: "Pleased", NEUTRAL: "Calm", NEGATIVE: "Unhappy", ANGRY: "Angry" },
};

export const trendLabel: Labels<EmotionTrend> = {
  zh: { IMPROVING: "好转", STEADY: "平稳", WORSENING: "恶化" },
  en: { IMPROVING: "Improving", STEADY: "Steady", WORSENING: "Worsening" },
};

export const handoffLabel: Labels<HandoffReason> = {
  zh: { LOW_CONFIDENCE: "机器人把握不足", NEGATIVE_EMOTION: "情绪负面", CUSTOMER_ASKED: "客户要求", VIP: "VIP 客户", BOT_SWITCHED_OFF: "机器人已关闭" },
  en: { LOW_CONFIDENCE: "Bot not confident", NEGATIVE_EMOTION: "Negative mood", CUSTOMER_ASKED: "Customer asked", VIP: "VIP", BOT_SWITCHED_OFF: "Bot switched off" },
};

export const agentStatusLabel: Labels<AgentStatus> = {
  zh: { ONLINE: "在线", AWAY: "暂离", OFFLINE: "离线" },
  en: { ONLINE: "Online", AWAY: "Away", OFFLINE: "Offline" },
};

export const closeReasonLabel: Labels<CloseReason> = {
  zh: { RESOLVED: "已解决", CUSTOMER_LEFT: "客户离开", IDLE_TIMEOUT: "超时未回复", MOVED_TO_TICKET: "转工单", SPAM: "垃圾信息" },
  en: { RESOLVED: "Resolved", CUSTOMER_LEFT: "Customer left", IDLE_TIMEOUT: "Idle timeout", MOVED_TO_TICKET: "Moved to a ticket", SPAM: "Spam" },
};

export const roleLabel: Labels<Role> = {
  zh: { CUSTOMER: "客户", AGENT: "客服", SUPERVISOR: "主管", ANALYST: "分析师", AUDITOR: "审计", ADMIN: "管理员", INTEGRATION: "集成" },
  en: { CUSTOMER: "Customer", AGENT: "Agent", SUPERVISOR: "Supervisor", ANALYST: "Analyst", AUDITOR: "Auditor", ADMIN: "Admin", INTEGRATION: "Integration" },
};

export const ticketKindLabel: Labels<TicketKind> = {
  zh: { REFUND: "退款", RETURN: "退货", DELIVERY: "物流", PRODUCT: "商品", BILLING: "账单", COMPLAINT: "投诉", OTHER: "其他" },
  en: { REFUND: "Refund", RETURN: "Return", DELIVERY: "Delivery", PRODUCT: "Product", BILLING: "Billing", COMPLAINT: "Complaint", OTHER: "Other" },
};
